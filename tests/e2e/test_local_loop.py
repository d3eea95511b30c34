"""The whole local loop, through the very handlers that run on AWS: label → train → detect → route →
review → merge → retrain. A small run: the sample's manifest as the seed, 40 raw lines, reviews in batches
of 5, the gate on (a fifth of the gold set held out as the stable test set, by document hash)."""

from __future__ import annotations

import csv
import io
import itertools
import tarfile
from pathlib import Path
from typing import Any

import pytest

from nerloop.documents import document_hash
from nerloop_local.emulator.runtime import LocalRuntime

BATCH = 5
SEED_LINES = 202  # the whole sample manifest: its test side (about 24 documents) is usable from v1 on


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> dict[str, Any]:
    workspace = tmp_path_factory.mktemp("workspace")
    with (sample_dir / "output.manifest").open("rb") as manifest:
        seed_manifest = b"".join(itertools.islice(manifest, SEED_LINES))
    raw_lines = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:40]
    reviewed: dict[str, list[dict[str, Any]]] = {}

    def reviewer(loop_name: str, content: dict[str, Any]) -> list[dict[str, Any]] | None:
        if len(reviewed) >= 2 * BATCH:
            return None  # later loops wait for a person
        # The reviewer keeps the model's spans and labels the first word as SERVICE when it is free.
        answer = [dict(item) for item in content["initialValue"]]
        first_word = len(content["text"].split(" ", 1)[0])
        if not any(item["startOffset"] < first_word for item in answer):
            answer.append({"label": "SERVICE", "startOffset": 0, "endOffset": first_word})
        reviewed[content["text"]] = answer
        return answer

    parameters = {"EntityTypes": "SERVICE,VERSION", "ConfidenceThreshold": "0.999",
                  "RetrainBatchSize": str(BATCH), "ReviewBudget": str(BATCH)}
    with LocalRuntime(workspace, parameters, reviewer=reviewer,
                      environment={"POWERTOOLS_METRICS_DISABLED": "true"}) as runtime:
        runtime.put_text("raw/offerings.txt", "\n".join(raw_lines) + "\n")
        runtime.label_with_manifest(seed_manifest, job_name=f"{runtime.stack.labeling_job_prefix()}-e2e-seed")
        result = runtime.run_until_idle(max_cycles=200)
        state = runtime.state
        keys = runtime.list_keys("")
        return {
            "idle": result.idle, "failures": [d.line() for d in result.failures],
            "versions": {v.version: v for v in state.versions.list()},
            "jobs": state.jobs.list(), "loops": state.loops.list(),
            "gold": {g.doc: g for g in state.gold.documents()},
            "keys": keys, "reviewed": reviewed,
            "files": {key: runtime.get_bytes(key) for key in keys
                      if key.startswith(("training/", "detection/output/"))},
            "dead_letters": runtime.dead_letters(),
            # What each CreateEntityRecognizer call asked for, as the stand-in recorded it.
            "training_input": {r.version: r.input_config for r in runtime.comprehend.recognizers.values()},
            "active": state.versions.active(),
        }


def test_the_loop_settles_without_failures(loop_run):
    assert loop_run["idle"]
    assert loop_run["failures"] == [] and loop_run["dead_letters"] == []


def test_the_labeling_job_became_the_first_snapshot_and_version(loop_run):
    assert "training/v1/annotations.csv" in loop_run["keys"] and "training/v1/documents.txt" in loop_run["keys"]
    assert loop_run["versions"]["v1"].status == "TRAINED"
    assert loop_run["versions"]["v1"].metrics["f1"] > 0.5


def test_detection_wrote_archives_and_routing_opened_loops_per_document(loop_run):
    archives = [key for key in loop_run["files"] if key.endswith("output/output.tar.gz")]
    assert archives and loop_run["jobs"]
    with tarfile.open(fileobj=io.BytesIO(loop_run["files"][archives[0]]), mode="r:gz") as archive:
        assert archive.getmembers()
    assert len(loop_run["loops"]) >= 2 * BATCH
    assert len({(loop.doc, loop.version) for loop in loop_run["loops"]}) == len(loop_run["loops"])


def test_reviews_were_merged_into_the_gold_set(loop_run):
    merged = [loop for loop in loop_run["loops"] if loop.status == "Completed"]
    assert len(merged) == 2 * BATCH == len(loop_run["reviewed"])
    for text in loop_run["reviewed"]:
        gold = loop_run["gold"][document_hash(text)]
        assert gold.origin.startswith("review:")
        assert any(span.begin == 0 and span.type == "SERVICE" for span in gold.spans)


def test_a_retrained_version_holds_the_reviews_in_its_training_data(loop_run):
    assert {"v2", "v3"} <= set(loop_run["versions"])
    assert loop_run["versions"]["v3"].status == "TRAINED"
    # A review lands on the side of the stable split its document hashes to: training or test.
    sides = []
    for prefix in ("", "test-"):
        documents = loop_run["files"][f"training/v3/{prefix}documents.txt"].decode("utf-8").splitlines()
        rows = list(csv.DictReader(io.StringIO(
            loop_run["files"][f"training/v3/{prefix}annotations.csv"].decode("utf-8"))))
        sides.append((documents, rows))
    for text, answer in loop_run["reviewed"].items():
        ((documents, rows),) = [(documents, rows) for documents, rows in sides if text in documents]
        line = documents.index(text)
        spans = {(int(r["Begin Offset"]), int(r["End Offset"]), r["Type"]) for r in rows if int(r["Line"]) == line}
        assert spans == {(a["startOffset"], a["endOffset"], a["label"]) for a in answer}


def test_the_test_set_reaches_create_entity_recognizer_and_is_never_trained_on(loop_run):
    for version, config in loop_run["training_input"].items():
        documents, annotations = config["Documents"], config["Annotations"]
        assert documents["TestS3Uri"].endswith(f"/training/{version}/test-documents.txt"), version
        assert annotations["TestS3Uri"].endswith(f"/training/{version}/test-annotations.csv"), version
        files = loop_run["files"]
        test = set(files[f"training/{version}/test-documents.txt"].decode().splitlines())
        train = set(files[f"training/{version}/documents.txt"].decode().splitlines())
        assert test and not test & train
        # Comprehend scored the version on exactly those documents.
        assert loop_run["versions"][version].metrics["test_documents"] == len(test)


def test_every_version_passed_the_gate_on_the_shared_test_set(loop_run):
    versions = loop_run["versions"]
    assert len(versions) >= 2
    assert versions["v1"].metrics["gate"]["reason"] == "no active version yet"
    for name, version in versions.items():
        gate = version.metrics["gate"]
        assert gate["status"] in ("ACTIVATED", "KEPT_INACTIVE"), name
        assert version.metrics["test_results"]["documents"] > 0, name
        if name != "v1":  # compared with the version active before it, on documents both were scored on
            assert gate["shared_documents"] >= 10 and gate["active"] is not None, name
    active = loop_run["active"][0]
    assert versions[active].metrics["gate"]["status"] == "ACTIVATED"
