"""Each version scored per document on the stable test set, and the gate applied (nerloop.gate).

Comprehend's own evaluation gives a version's aggregate metrics only (EntityRecognizerMetadata:
EvaluationMetrics and per type, no per-document results: botocore's comprehend model). So when a version
has trained on a snapshot with a usable test set, the detect stage starts a detection job with that version
over the snapshot's test documents (`training/<version>/test-documents.txt`, as they are; output under
evaluation/output/). When the watch stage reports the job's end, its output is compared with the gold test
labels, document by document, and kept as `evaluation/results/<version>.json`. The gate then sets the
version beside the active one's results on the documents both were scored on with the same labels.

Until its decision the new version is not active and the pool waits for it (the active version keeps
serving); the first version is activated at once (there is nothing to compare with), and so is a version
whose test set is not usable yet, or whose active rival has no results.
"""

from __future__ import annotations

import codecs
import csv
import json
from typing import Any

from nerloop.aws import Aws
from nerloop.comprehend_output import DocumentEntities, iter_detection_output
from nerloop.comprehend_training import ANNOTATIONS_HEADER
from nerloop.constants import EVALUATION_RESULTS_PREFIX
from nerloop.cost_records import measure_lines, record_detection_input
from nerloop.detection_jobs import DetectionStart, detection_token, start_or_queue
from nerloop.documents import Span, document_hash
from nerloop.errors import InvalidRecord
from nerloop.flywheel import promote
from nerloop.gate import DocumentResult, GateDecision, decide, score_document
from nerloop.observability import logger
from nerloop.s3_uri import split_s3_uri
from nerloop.settings import Settings
from nerloop.snapshots import snapshot_test_keys
from nerloop.state import DetectionRequest, StateTable, Version
from nerloop.test_set import gold_fingerprint

PENDING = "PENDING"  # metrics["gate"]["status"] while the version's evaluation job runs


def results_key(version: str) -> str:
    return f"{EVALUATION_RESULTS_PREFIX}{version}.json"


def test_set_usable(version: Version) -> bool:
    """Whether the train stage found the version's test set usable (nerloop.test_set)."""
    return bool((version.metrics.get("test_set") or {}).get("usable"))


def start_evaluation(state: StateTable, aws: Aws, settings: Settings, version: Version) -> DetectionStart:
    """Start (or queue) the detection job over the version's test set; once per version ARN."""
    documents_key, _ = snapshot_test_keys(version.version)
    count = int((version.metrics.get("test_set") or {}).get("documents") or 0)
    # An evaluation job is billed like any detection job: its input is measured for the round's cost.
    body = aws.s3.get_object(Bucket=settings.data_bucket, Key=documents_key)["Body"]
    record_detection_input(aws.table, documents_key, measure_lines(body.iter_lines()))
    request = state.jobs.record_request(
        DetectionRequest(detection_token(f"evaluate|{version.arn}"), version.version, documents_key, count))
    return start_or_queue(state, aws, settings, request)


def record_pending(state: StateTable, version: str) -> None:
    """Mark the version's activation as waiting for its evaluation."""
    _update_gate(state, version, {"status": PENDING})


def record_decision(state: StateTable, decision: GateDecision) -> None:
    _update_gate(state, decision.candidate, {"status": "ACTIVATED" if decision.activate else "KEPT_INACTIVE",
                                             **decision.as_dict()})


def gate_pending(version: Version | None) -> bool:
    return bool(version and (version.metrics.get("gate") or {}).get("status") == PENDING)


def _update_gate(state: StateTable, version: str, gate: dict[str, Any]) -> None:
    current = state.versions.get(version)
    stored = dict(current.metrics) if current else {}
    stored["gate"] = gate
    state.versions.update(version, metrics=stored)


def read_gold_test_set(s3: Any, bucket: str, version: str) -> dict[int, tuple[str, list[Span]]]:
    """The snapshot's test documents by 0-based line: (document hash, gold spans)."""
    documents_key, annotations_key = snapshot_test_keys(version)
    body = s3.get_object(Bucket=bucket, Key=documents_key)["Body"]
    lines = [raw.decode("utf-8") for raw in body.iter_lines(keepends=False)]
    spans: dict[int, list[Span]] = {}
    reader = csv.reader(codecs.iterdecode(
        s3.get_object(Bucket=bucket, Key=annotations_key)["Body"].iter_lines(keepends=True), "utf-8"))
    header = [cell.strip() for cell in next(reader, [])]
    if header != ANNOTATIONS_HEADER:
        raise InvalidRecord(annotations_key, 1, f"header is {header}, expected {ANNOTATIONS_HEADER}")
    for row_number, row in enumerate(reader, start=2):
        try:
            _, line, begin, end, type_ = (cell.strip() for cell in row)
            spans.setdefault(int(line), []).append(Span(int(begin), int(end), type_))
        except ValueError as exc:
            raise InvalidRecord(annotations_key, row_number, f"not a File,Line,Begin,End,Type row: {exc}") from exc
    return {number: (document_hash(text), spans.get(number, [])) for number, text in enumerate(lines)}


def score_output(s3: Any, bucket: str, version: str, output_uri: str) -> dict[str, DocumentResult]:
    """The version's detection output over its test set, scored per document against the gold labels."""
    gold = read_gold_test_set(s3, bucket, version)
    output_bucket, output_key = split_s3_uri(output_uri)
    predicted: dict[int, list[Span]] = {}
    body = s3.get_object(Bucket=output_bucket, Key=output_key)["Body"]
    for record in iter_detection_output(body, output_key):
        if isinstance(record, DocumentEntities):
            predicted[record.line] = [entity.to_span() for entity in record.entities]
        else:  # a failed document or a bad record: that document is left out of the comparison
            logger.warning("test document not scored", version=version, record=str(record))
    return {doc: score_document(spans, predicted[line], gold_fingerprint(spans))
            for line, (doc, spans) in gold.items() if line in predicted}


def save_results(s3: Any, bucket: str, version: str, results: dict[str, DocumentResult]) -> None:
    body = {doc: [r.tp, r.fp, r.fn, r.labels] for doc, r in sorted(results.items())}
    s3.put_object(Bucket=bucket, Key=results_key(version), ContentType="application/json",
                  Body=json.dumps({"version": version, "documents": body}).encode("utf-8"))


def record_scored(state: StateTable, version: str, documents: int) -> None:
    """Note on the version that its per-document results are saved (so nothing reads a missing object)."""
    current = state.versions.get(version)
    stored = dict(current.metrics) if current else {}
    stored["test_results"] = {"documents": documents, "key": results_key(version)}
    state.versions.update(version, metrics=stored)


def has_results(state: StateTable, version: str) -> bool:
    found = state.versions.get(version)
    return bool(found and found.metrics.get("test_results"))


def load_results(state: StateTable, s3: Any, bucket: str, version: str) -> dict[str, DocumentResult] | None:
    """A version's per-document results, or None when it was never scored."""
    if not has_results(state, version):
        return None
    body = s3.get_object(Bucket=bucket, Key=results_key(version))["Body"].read()
    return {doc: DocumentResult(tp, fp, fn, labels)
            for doc, (tp, fp, fn, labels) in json.loads(body)["documents"].items()}


def judge(state: StateTable, aws: Aws, settings: Settings, version: str,
          results: dict[str, DocumentResult] | None) -> GateDecision:
    """The gate's decision on `version` against the active version (by their stored results)."""
    active = state.versions.active()
    active_name = active[0] if active else None
    active_results = (load_results(state, aws.s3, settings.data_bucket, active_name)
                      if active_name and active_name != version else None)
    if results is None:
        return GateDecision(version, active_name, active_name is None,
                            "the evaluation job ended without results")
    return decide(version, results, active_name, active_results, tolerance=settings.f1_tolerance,
                  minimum=settings.test_minimum)


def activate_on_trained(state: StateTable, aws: Aws, settings: Settings, version: Version, f1: float) -> bool:
    """A version has trained: start its evaluation when its test set is usable, and activate it at
    once when the gate has nothing to compare (no active version, no usable test set, an active
    version never scored). True when activated now; False when the decision waits for the evaluation."""
    usable = test_set_usable(version)
    if usable:
        start_evaluation(state, aws, settings, version)
    active = state.versions.active()
    reason = ("no active version yet" if active is None
              else "the version's test set is not usable yet" if not usable
              else "the active version has no test results" if not has_results(state, active[0])
              else None)
    if reason is None:
        record_pending(state, version.version)
        return False
    record_decision(state, GateDecision(version.version, active[0] if active else None, True, reason))
    promote(state, aws, settings, version.version, f1)  # in flywheel mode, UpdateFlywheel too
    return True


def finish_evaluation(state: StateTable, aws: Aws, settings: Settings, version_name: str, status: str,
                      output_uri: str) -> tuple[int | None, GateDecision | None]:
    """The version's evaluation job ended: keep its per-document results (COMPLETED), and decide its
    activation if it waits for them (activating it if so decided). Returns (documents scored, the
    decision when one was made); the caller records the decision (`record_decision`)."""
    results = score_output(aws.s3, settings.data_bucket, version_name, output_uri) if status == "COMPLETED" else None
    if results is not None:
        save_results(aws.s3, settings.data_bucket, version_name, results)
        record_scored(state, version_name, len(results))
    version = state.versions.get(version_name)
    if version is None or not gate_pending(version):
        return (len(results) if results is not None else None), None
    decision = judge(state, aws, settings, version_name, results)
    if decision.activate:
        promote(state, aws, settings, version_name, float(version.metrics.get("f1") or 0.0))
    logger.info("gate decided", **decision.as_dict())
    # Not recorded yet: the caller records it once the pool's detection has started, so a retry after a
    # failure in between decides again (the same inputs, the same decision) and starts what was left.
    return (len(results) if results is not None else None), decision
