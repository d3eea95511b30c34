"""The quality gate: is a new version worse than the active one on the test documents both were scored on?

Comprehend reports only aggregate metrics for a version, each on its own test documents, so two F1
figures cannot be paired. The loop scores every version per document instead (nerloop.evaluation: a
detection job over the stable test set, compared with the gold labels) and compares the two versions on
the documents both were scored on with the same labels: paired, like with like.

The decision (`decide`), with e = a document's errors (false positives + false negatives):
- fewer than `minimum` shared documents: activate (there is nothing to judge on yet);
- the new version's F1 on the shared documents is at least the active one's: activate (a version
  better on the shared test set is never held back);
- otherwise a one-sided sign test over the documents where the two differ in e: the new version stays
  inactive only when it is worse on significantly more documents than it is better on (p < `alpha`)
  and its F1 on the shared documents is lower by more than `F1Tolerance`. Anything else is noise, or
  a difference too small to matter: activate.
The sign test needs no assumption about how errors are distributed, counts each document once however
long it is, and is exact (binomial) for the few hundred documents a test set holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from nerloop.documents import Span

DEFAULT_ALPHA = 0.05
_EXACT_UP_TO = 2000  # discordant documents; beyond, the normal approximation is within 1e-3


@dataclass(frozen=True)
class DocumentResult:
    """A version's result on one test document: true positives, false positives, false negatives
    (exact span and type), and the fingerprint of the gold labels it was scored against."""

    tp: int
    fp: int
    fn: int
    labels: str

    @property
    def errors(self) -> int:
        return self.fp + self.fn


def score_document(gold: Iterable[Span], predicted: Iterable[Span], labels: str) -> DocumentResult:
    """A version's predicted spans on a document against its gold spans (exact matches count)."""
    gold_set, predicted_set = set(gold), set(predicted)
    tp = len(gold_set & predicted_set)
    return DocumentResult(tp=tp, fp=len(predicted_set) - tp, fn=len(gold_set) - tp, labels=labels)


def micro_f1(results: Iterable[DocumentResult]) -> float:
    """F1 over the documents' summed counts (1.0 when there is nothing to find and nothing found)."""
    tp = fp = fn = 0
    for result in results:
        tp, fp, fn = tp + result.tp, fp + result.fp, fn + result.fn
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def sign_test_p(worse: int, better: int) -> float:
    """One-sided sign test: P(at least `worse` of the `worse + better` discordant documents go against
    the new version) were each as likely to go either way."""
    n = worse + better
    if n == 0 or worse == 0:
        return 1.0
    if n <= _EXACT_UP_TO:
        return sum(math.comb(n, k) for k in range(worse, n + 1)) / 2**n
    z = (worse - 0.5 - n / 2) / math.sqrt(n / 4)  # continuity-corrected
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided about `candidate` against `active`, and on what evidence."""

    candidate: str
    active: str | None
    activate: bool
    reason: str
    shared_documents: int = 0
    candidate_f1: float | None = None  # on the shared documents
    active_f1: float | None = None
    better_documents: int = 0  # where the candidate makes fewer errors
    worse_documents: int = 0
    p_worse: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(candidate: str, candidate_results: Mapping[str, DocumentResult], active: str | None,
           active_results: Mapping[str, DocumentResult] | None, *, tolerance: float, minimum: int,
           alpha: float = DEFAULT_ALPHA) -> GateDecision:
    """Activate `candidate` or keep `active`, from both versions' per-document results (keyed by
    document hash); see the module's rule."""
    if active is None or active_results is None:
        return GateDecision(candidate, active, True, "no active version scored on the test set")
    shared = [doc for doc, result in candidate_results.items()
              if doc in active_results and active_results[doc].labels == result.labels]
    if len(shared) < minimum:
        return GateDecision(candidate, active, True, f"{len(shared)} shared test documents, fewer than {minimum}",
                            shared_documents=len(shared))
    new_f1 = micro_f1(candidate_results[doc] for doc in shared)
    old_f1 = micro_f1(active_results[doc] for doc in shared)
    better = sum(1 for doc in shared if candidate_results[doc].errors < active_results[doc].errors)
    worse = sum(1 for doc in shared if candidate_results[doc].errors > active_results[doc].errors)
    p = sign_test_p(worse, better)
    if new_f1 >= old_f1:
        activate, reason = True, "not worse on the shared test documents"
    elif p < alpha and old_f1 - new_f1 > tolerance:
        activate, reason = False, (f"worse on the shared test documents (sign test p={p:.3g}, "
                                   f"F1 {new_f1:.3f} < {old_f1:.3f} - {tolerance})")
    else:
        activate, reason = True, f"{'within noise' if p >= alpha else 'within F1Tolerance'} (sign test p={p:.3g})"
    return GateDecision(candidate, active, activate, reason, shared_documents=len(shared),
                        candidate_f1=round(new_f1, 6), active_f1=round(old_f1, 6), better_documents=better,
                        worse_documents=worse, p_worse=round(p, 6))
