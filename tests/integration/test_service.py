"""`nerloop up` and `nerloop status` through the CLI's main() in process: text dropped in an inbox
flows through the local loop once, a restart sends nothing twice, and status reads a workspace
without changing it."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import itertools
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nerloop.documents import document_hash
from nerloop.stages.preprocess import split_document
from nerloop_local.cli import main
from nerloop_local.commands import up as service
from nerloop_local.emulator.workspace import Workspace

SEED_LINES = 100  # enough for Comprehend's minimums (25 annotations per type, a 5 KB corpus) once a fifth is held out
# Every detected document goes to a human loop, so loops surely wait.
PARAMS = ["--param", "ConfidenceThreshold=0.999"]


@dataclass
class Run:
    code: int
    out: str
    err: str


def nerloop(*argv: str | Path) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return Run(code, out.getvalue(), err.getvalue())


def file_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.is_file())


def folder_digest(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file's content hash and modification time (a save rewrites files even when unchanged)."""
    return {str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module", autouse=True)
def environment() -> Iterator[None]:
    """main() sets offline credentials and Powertools variables for the process: put them back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> dict[str, Any]:
    """Given a seed manifest and two text files in the inbox, `up --once`; then the first file is put back
    in the inbox (as after a crash before it was moved) and `up --once` runs again."""
    base = tmp_path_factory.mktemp("service")
    workspace, inbox = base / "workspace", base / "inbox"
    inbox.mkdir()
    seed = base / "seed.manifest"
    with (sample_dir / "output.manifest").open("rb") as handle:
        seed.write_bytes(b"".join(itertools.islice(handle, SEED_LINES)))
    lines = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:10]
    (inbox / "a.txt").write_text("\n".join(lines[:6]) + "\n", encoding="utf-8")
    (inbox / "b.txt").write_text("\n".join(lines[6:]) + "\n", encoding="utf-8")
    documents = {document_hash(doc) for line in lines for doc in split_document(line).documents}

    first = nerloop("up", "--once", "--workspace", workspace, "--inbox", inbox, "--seed-manifest", seed, *PARAMS)
    after_first = {"inbox": file_names(inbox), "done": file_names(inbox / "done")}
    status_first = json.loads(nerloop("status", "--workspace", workspace, "--json").out)
    shutil.copy(inbox / "done" / "a.txt", inbox / "a.txt")
    second = nerloop("up", "--once", "--workspace", workspace, "--inbox", inbox, "--seed-manifest", seed)
    status_second = json.loads(nerloop("status", "--workspace", workspace, "--json").out)
    return {"workspace": workspace, "inbox": inbox, "documents": documents, "first": first, "second": second,
            "after_first": after_first, "status_first": status_first, "status_second": status_second,
            "done": file_names(inbox / "done"), "inbox_left": file_names(inbox)}


def test_up_once_settles_and_moves_the_inbox_files_to_done(served):
    assert served["first"].code == 0, served["first"].out + served["first"].err
    assert served["after_first"] == {"inbox": [], "done": ["a.txt", "b.txt"]}


def test_up_once_prints_a_line_per_delivery(served):
    out = served["first"].out
    assert "PreprocessFunction  Object Created raw/a.txt  ok" in out
    assert "PreprocessFunction  Object Created raw/b.txt  ok" in out


def test_the_inbox_documents_reach_the_pool(served):
    pool = served["status_first"]["pool"]
    assert pool["total"] == len(served["documents"]) > 0
    assert served["status_first"]["raw_files"] == 2


def test_the_seed_manifest_trains_the_first_active_version(served):
    status = served["status_first"]
    [version] = status["versions"]
    assert (version["version"], version["status"], version["active"]) == ("v1", "TRAINED", True)
    assert status["active"]["version"] == "v1"
    assert 0.0 < version["f1"] <= 1.0
    assert set(version["per_type"]) == {"SERVICE", "VERSION"}
    assert 0 < status["gold"]["documents"] <= SEED_LINES


def test_status_counts_the_human_loops_waiting_for_a_reviewer(served):
    status = served["status_first"]
    waiting = status["reviews"]["loops_waiting"]
    assert waiting == status["pool"]["in_review"] > 0
    assert status["reviews"]["toward_next_retrain"] == 0
    assert status["reviews"]["retrain_batch_size"] == 25  # the template's default
    assert f"{waiting} human loops wait for a reviewer" in served["first"].out


def test_status_shows_no_work_in_flight_once_idle(served):
    status = served["status_first"]
    assert status["in_flight"] == {"trainings": [], "detection_jobs": [], "training_lock": None}
    assert status["dead_letters"] == {} and status["events_pending"] == {}


def test_a_second_run_sends_nothing_twice(served):
    second = served["second"]
    assert second.code == 0, second.out + second.err
    assert "a.txt is already at raw/a.txt; not sent again" in second.out
    for stage in ("PreprocessFunction", "ConvertFunction", "TrainFunction"):
        assert stage not in second.out
    before, after = served["status_first"], served["status_second"]
    assert after["pool"] == before["pool"] and after["raw_files"] == 2
    assert [v["version"] for v in after["versions"]] == ["v1"]
    assert after["deliveries"]["PreprocessFunction"] == {"ok": 2}
    assert after["deliveries"]["ConvertFunction"] == {"ok": 1}


def test_a_file_sent_before_a_restart_is_moved_not_overwritten(served):
    assert served["inbox_left"] == [] and served["done"] == ["a.2.txt", "a.txt", "b.txt"]


def test_the_seed_is_not_labeled_again_once_the_gold_set_holds_documents(served):
    assert "is not used again" in served["second"].out
    assert served["status_second"]["gold"] == served["status_first"]["gold"]


def test_status_reads_the_workspace_without_changing_it(served):
    before = folder_digest(served["workspace"])
    run = nerloop("status", "--workspace", served["workspace"])
    assert run.code == 0
    assert "← active" in run.out and "human loops" in run.out
    assert folder_digest(served["workspace"]) == before


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_status_without_a_workspace_exits_2(tmp_path, make):
    folder = make(tmp_path)
    run = nerloop("status", "--workspace", folder)
    assert run.code == 2 and str(folder) in run.err


@pytest.mark.parametrize("param", ["Nope=1", "ConfidenceThreshold=2", "RetrainBatchSize=many", "EntityTypes=A B",
                                   "ReviewBudget"])
def test_up_refuses_a_bad_param_before_starting(tmp_path, param):
    workspace = tmp_path / "workspace"
    run = nerloop("up", "--once", "--workspace", workspace, "--param", param)
    assert run.code == 2 and param.split("=")[0] in run.err
    assert not workspace.exists()


def test_up_refuses_a_missing_inbox(tmp_path):
    run = nerloop("up", "--once", "--workspace", tmp_path / "workspace", "--inbox", tmp_path / "nowhere")
    assert run.code == 2 and "nowhere" in run.err


def test_up_refuses_a_workspace_another_up_holds(tmp_path):
    workspace = tmp_path / "workspace"
    with service.workspace_lock(workspace):
        run = nerloop("up", "--once", "--workspace", workspace, "--inbox", tmp_path)
    assert run.code == 2 and "another `nerloop up`" in run.err


def test_ctrl_c_stops_the_service_cleanly_with_the_state_saved(tmp_path, monkeypatch):
    def interrupt(seconds: float, wakeup: threading.Event) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(service, "wait", interrupt)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "notes.txt").write_text("Amazon S3 now supports conditional writes.\n", encoding="utf-8")
    monkeypatch.setattr(service, "SETTLE_SECONDS", 0.0)  # the file was just written: take it at once
    run = nerloop("up", "--workspace", tmp_path / "workspace", "--inbox", inbox, "--interval", "60",
                  "--review-port", "0")
    assert run.code == 0
    assert "state saved" in run.out
    assert re.search(r"^review page: http://127\.0\.0\.1:\d+/$", run.out, re.MULTILINE)
    assert Workspace(tmp_path / "workspace").exists()
    assert file_names(inbox / "done") == ["notes.txt"]


# --- the review page -----------------------------------------------------------------------------------------


def api(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request(method, path, body=None if body is None else json.dumps(body),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    return response.status, data


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # the service's thread: see cmd_up
def test_an_answer_on_the_review_page_is_merged_by_the_services_next_round(served, tmp_path):
    workspace = tmp_path / "workspace"
    shutil.copytree(served["workspace"], workspace)
    out = io.StringIO()
    up = service.Service(service.ServiceOptions(workspace=workspace, inbox=served["inbox"], interval=3600,
                                                review_port=0), out=out)
    thread = threading.Thread(target=up.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while up.review_url is None and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        url = up.review_url
        assert url, out.getvalue()
        before = api(url, "GET", "/api/status")[1]["reviews"]
        first = api(url, "GET", "/api/queue")[1]["loops"][0]["name"]
        spans = api(url, "GET", f"/api/loops/{first}")[1]["spans"]
        status, answer = api(url, "POST", f"/api/loops/{first}/answer", {"entities": spans})
        assert status in (200, 202), answer  # 202: taken while a round ran, handed to A2I after it
        while api(url, "GET", "/api/status")[1]["reviews"]["merged"] == before["merged"]:
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.1)  # the answer woke the service: its round merges the review, however long the interval
        after = api(url, "GET", "/api/status")[1]["reviews"]
    finally:
        up.stop()
        thread.join(60)
    assert not thread.is_alive()
    assert (after["merged"], after["loops_waiting"]) == (before["merged"] + 1, before["loops_waiting"] - 1)
    assert f"MergeFunction  SageMaker A2I HumanLoop Status Change {first} Completed  ok" in out.getvalue()
    assert f"human loops wait for a reviewer at {url}" in out.getvalue()
    assert "state saved" in out.getvalue()


def test_up_refuses_a_review_port_out_of_range(tmp_path):
    run = nerloop("up", "--workspace", tmp_path / "workspace", "--review-port", "70000")
    assert run.code == 2 and "--review-port" in run.err
    assert not (tmp_path / "workspace").exists()


def test_up_says_when_the_review_port_is_taken(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = nerloop("up", "--workspace", tmp_path / "workspace", "--inbox", tmp_path, "--review-port", port)
    assert run.code == 2 and f"--review-port {port}: cannot serve the review page there" in run.err
