"""What each stage returns: typed results, one frozen dataclass per variant (a skip, a continuation, a
finished run), and the JSON a handler returns to Lambda (`to_dict`, the dataclass's fields in order).

The idempotency record keeps that JSON; a repeat rebuilds the variant whose fields are its keys
(`from_dict`, used by nerloop.idempotency.run_stage_once). Nothing here imports the idempotency
machinery: the watch stage returns a result but guards nothing, and its cold start stays without it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from nerloop.continuation import Continued


class StageResult:
    """Base of the result variants (each a `@dataclass(frozen=True, slots=True)`)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the handler returns: every field, in declaration order (nested values as they are)."""
        instance = cast("DataclassInstance", self)
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(instance)}


class UnknownResultShape(ValueError):
    """A stored result whose keys match none of the variants a stage returns."""


def from_dict(stored: Mapping[str, Any], variants: tuple[type[StageResult], ...]) -> StageResult:
    """The variant whose field names are exactly `stored`'s keys, built from it."""
    keys = set(stored)
    for variant in variants:
        if {field.name for field in dataclasses.fields(cast("type[DataclassInstance]", variant))} == keys:
            return variant(**stored)
    raise UnknownResultShape(f"no result variant among {[v.__name__ for v in variants]} has keys {sorted(keys)}")


# --- preprocess (stage 1) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreprocessSkipped(StageResult):
    """The object changed since the event (that write has its own event): nothing read."""

    batch: str
    documents_key: None = None
    manifest_key: None = None
    labeling_job: None = None
    quarantine: None = None
    skipped: str = "object changed since the event"


@dataclass(frozen=True, slots=True)
class Preprocessed(StageResult):
    """The batch made of one object: the keys written (None when no document was new), the seed
    labeling job started (its ARN, or None), the quarantine report's key, and the counts."""

    batch: str
    documents_key: str | None
    manifest_key: str | None
    labeling_job: str | None
    quarantine: str | None
    lines: int
    empty: int
    sentences: int
    documents: int  # new to the pool
    duplicates: int  # earlier in the file
    known: int  # already in the pool or the gold set
    rejected: int  # quarantined: lines not UTF-8, sentences over the size limit


PreprocessResult = PreprocessSkipped | Preprocessed


# --- convert (stage 2) ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversionSkipped(StageResult):
    """The job did not complete: nothing converted."""

    job: str
    skipped: str  # why, e.g. "status Failed"


@dataclass(frozen=True, slots=True)
class ConversionContinued(StageResult):
    """Time ran short: the counts so far, and the continuation asked for."""

    job: str
    manifest: str
    lines: int
    documents: int
    continued: Continued


@dataclass(frozen=True, slots=True)
class Converted(StageResult):
    """The whole manifest converted."""

    job: str
    manifest: str
    label_attribute: str
    lines: int
    documents: int  # distinct documents written
    repeated: int  # lines repeating an earlier line's document
    spans: int
    quarantined: int
    trimmed: int
    quarantine: str | None  # the quarantine report's key, None when nothing was quarantined
    snapshot: str | None  # the training snapshot version written, None when none was


ConversionResult = ConversionSkipped | ConversionContinued | Converted


# --- train (stage 3) --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainingStarted(StageResult):
    """The snapshot passed the checks: a recognizer version is training (or its flywheel datasets made)."""

    version: str
    status: str  # "SUBMITTED"
    arn: str  # the version's ARN; "" in flywheel mode until the iteration ends
    training_mode: str
    documents: int
    annotations: dict[str, int]  # per entity type
    test_documents: int
    test_set_used: bool


@dataclass(frozen=True, slots=True)
class TrainingRejected(StageResult):
    """The snapshot fell short of Comprehend's minimums: nothing trains; the report says why."""

    version: str
    status: str  # "REJECTED"
    problems: list[str]
    report: str  # the report's key


TrainingResult = TrainingStarted | TrainingRejected


# --- detect (stage 5) -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingEnded(StageResult):
    """A version's training ended without a model (or in a status with nothing to do): the lock released,
    a due retrain started (`snapshot`)."""

    version: str
    status: str
    snapshot: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionTrained(StageResult):
    """A version trained and activated at once: the old versions deleted, the pool's detection started."""

    version: str
    status: str
    f1: float
    active: str | None
    gate_pending: bool = False
    deleted_versions: list[str]
    detection_job: str | None
    detection_queued: bool
    snapshot: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionAwaitsGate(StageResult):
    """A version trained and waits for the gate's evaluation job (handle_evaluation_status)."""

    version: str
    status: str
    f1: float
    active: str | None  # the version active meanwhile
    gate_pending: bool = True
    deleted_versions: list[str]
    snapshot: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationScored(StageResult):
    """The gate's evaluation job ended; no activation waited for it (`scored_documents`: None if not scored)."""

    version: str
    status: str
    scored_documents: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GateDecided(StageResult):
    """The gate decided the version's activation; the pool's detection started with the active version."""

    version: str
    status: str
    scored_documents: int | None
    activated: bool
    reason: str
    deleted_versions: list[str]
    detection_job: str | None
    detection_queued: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchWaits(StageResult):
    """No version is active yet: the batch waits for the first one's detection over the whole pool."""

    batch: str
    documents: int
    detection_job: None = None
    skipped: str = "no active version yet"


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchDetecting(StageResult):
    """The batch's detection started or queued (`detection_job` None when queued) with `version`."""

    batch: str
    documents: int
    detection_job: str | None
    detection_queued: bool
    version: str


RecognizerStatusResult = TrainingEnded | VersionTrained | VersionAwaitsGate


EvaluationResult = EvaluationScored | GateDecided


BatchResult = BatchWaits | BatchDetecting


# --- route (stage 6) --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingContinued(StageResult):
    """Time ran short: the records routed so far, and the continuation asked for."""

    job: str
    version: str
    archive: str
    records: int
    continued: Continued


@dataclass(frozen=True, slots=True, kw_only=True)
class Routed(StageResult):
    """The whole output routed: where its records went, and the quarantine report's key."""

    job: str
    version: str
    archive: str
    records: int
    accepted: int
    loops_started: int
    loops_existing: int
    over_budget: int
    skipped: int
    quarantined: int
    document_failures: int
    filled: int
    over_quota: int
    quarantine: str | None


RouteResult = RoutingContinued | Routed


# --- merge (stage 7) --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopIgnored(StageResult):
    """A status that is not an end: nothing done."""

    loop: str
    status: str
    merged: bool = False
    ignored: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopAlreadyFinished(StageResult):
    """The loop was recorded as finished before (`already_finished`, its recorded status): nothing
    changed, a due retrain started (`snapshot`)."""

    loop: str
    status: str
    document: str
    version: str
    merged: bool = False
    snapshot: str | None
    already_finished: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopUnmerged(StageResult):
    """Failed or Stopped: the loop recorded as `recorded_status` and its document back to waiting (`requeued`)."""

    loop: str
    status: str
    document: str
    version: str
    merged: bool = False
    snapshot: str | None
    recorded_status: str
    failure: str
    requeued: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerRejected(StageResult):
    """Completed with an answer that failed validation: quarantined, the loop recorded as Failed."""

    loop: str
    status: str
    document: str
    version: str
    merged: bool = False
    snapshot: str | None
    recorded_status: str
    failure: str
    requeued: bool
    quarantine: str | None  # the quarantine report's key


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewMerged(StageResult):
    """The reviewed spans are the document's gold labels; `counted` once, `reviews` the count read after."""

    loop: str
    status: str
    document: str
    version: str
    merged: bool = True
    snapshot: str | None
    counted: bool
    spans: int
    worker: str  # the reviewers' ids, comma-separated
    quarantine: str | None  # the notes' report, when the answer was repaired
    reviews: int


MergeResult = LoopIgnored | LoopAlreadyFinished | LoopUnmerged | AnswerRejected | ReviewMerged


# --- watch (stage 4) --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Polled(StageResult):
    """One poll: the status changes published, the detection jobs started, the snapshot written (None
    when none was), and the human loops ended without the merge stage hearing of it ("loop: status")."""

    changes: list[dict[str, str]]
    started: list[str]
    snapshot: str | None
    reconciled: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """As the handler returns it: `reconciled` only when a loop was."""
        result = StageResult.to_dict(self)
        if not self.reconciled:
            del result["reconciled"]
        return result
