"""The review page's server through http.client, over a desk on a started LocalRuntime whose human loops
were started here with the input the route stage builds (no browser, no pump). Also the one check
that the A2I worker template deployed on AWS and the page read the same input and answer alike."""

from __future__ import annotations

import html
import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from nerloop.a2i import build_input_content, loop_name
from nerloop.comprehend_output import DetectedEntity
from nerloop.constants import CROWD_ELEMENT_NAME
from nerloop.documents import Span, document_hash
from nerloop.review_answers import parse_output, review_answer
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.emulator.template import load_template
from nerloop_local.review.desk import ReviewDesk
from nerloop_local.review.server import PAGE_POLICY, ReviewServer, missing_report_page
from nerloop_local.standins.a2i import A2I

TYPES = ("SERVICE", "VERSION")


def found(text: str, part: str, type_: str, score: float) -> DetectedEntity:
    begin = text.index(part)
    return DetectedEntity(begin=begin, end=begin + len(part), score=score, text=part, type=type_)


@dataclass
class Served:
    runtime: Any
    server: ReviewServer
    report_dir: Path
    answers: list[int] = field(default_factory=list)

    def start_loop(self, text: str, entities: list[DetectedEntity]) -> str:
        """A human loop for `text`, as the route stage starts one; its name."""
        doc = document_hash(text)
        name = loop_name(doc, "v1")
        self.runtime.client(A2I).start_human_loop(
            HumanLoopName=name, FlowDefinitionArn=self.runtime.flow_definition_arn,
            HumanLoopInput={"InputContent": build_input_content(doc, text, entities, "v1", TYPES)})
        return name

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any, http.client.HTTPResponse]:
        connection = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
        payload = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        connection.request(method, path, body=payload,
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        decoded = json.loads(data) if response.getheader("Content-Type", "").startswith("application/json") else data
        return response.status, decoded, response

    def output(self, name: str) -> bytes:
        uri = self.runtime.client(A2I).describe_human_loop(HumanLoopName=name)["HumanLoopOutput"]["OutputS3Uri"]
        return self.runtime.get_bytes(uri.split("/", 3)[3])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("review")
    runtime = LocalRuntime(base / "workspace", environment={"POWERTOOLS_METRICS_DISABLED": "true"}).start()
    answers: list[int] = []
    desk = ReviewDesk(runtime, on_answer=lambda: answers.append(1))
    server = ReviewServer(desk, base / "report", 0).start()
    try:
        yield Served(runtime, server, base / "report", answers)
    finally:
        server.stop()
        runtime.close(save=False)


def answer_for(entities: list[dict[str, Any]], seconds: float = 3.5) -> dict[str, Any]:
    return {"entities": entities, "seconds": seconds}


# --- reading ---------------------------------------------------------------------------------------------


def test_the_queue_lists_the_waiting_loops_least_confident_first(served):
    sure = served.start_loop("AWS Lambda supports Java 21.", [found("AWS Lambda supports Java 21.", "Java 21",
                                                                     "VERSION", 0.97)])
    unsure = served.start_loop("Amazon EC2 adds C7 instances.", [found("Amazon EC2 adds C7 instances.", "Amazon EC2",
                                                                       "SERVICE", 0.12)])

    status, body, _ = served.request("GET", "/api/queue")

    assert status == 200
    names = [loop["name"] for loop in body["loops"]]
    assert names.index(unsure) < names.index(sure)
    assert body["loops"][names.index(unsure)]["preview"] == "Amazon EC2 adds C7 instances."


def test_a_loop_shows_its_text_labels_and_scored_spans(served):
    text = "Amazon S3 2.0 is out."
    name = served.start_loop(text, [found(text, "Amazon S3", "SERVICE", 0.8), found(text, "2.0", "VERSION", 0.3)])

    status, body, _ = served.request("GET", f"/api/loops/{name}")

    assert status == 200
    assert (body["text"], body["labels"], body["version"]) == (text, list(TYPES), "v1")
    assert [(s["label"], s["startOffset"], s["endOffset"], s["score"]) for s in body["spans"]] == [
        ("VERSION", 10, 13, 0.3), ("SERVICE", 0, 9, 0.8)]


def test_status_counts_the_loops_waiting(served):
    status, body, _ = served.request("GET", "/api/status")

    assert status == 200
    assert body["reviews"]["loops_waiting"] == len(served.runtime.a2i.pending_loops())
    assert body["reviews"]["merged"] == 0 and body["latest"] is None


# --- answering -------------------------------------------------------------------------------------------


def test_an_answer_is_written_as_a2i_writes_it_and_wakes_the_service(served):
    text = "Amazon Aurora 3.2 is out."
    name = served.start_loop(text, [found(text, "Amazon Aurora", "SERVICE", 0.6)])
    entities = [{"label": "VERSION", "startOffset": 14, "endOffset": 17},
                {"label": "SERVICE", "startOffset": 0, "endOffset": 13}]
    woken = len(served.answers)

    status, body, _ = served.request("POST", f"/api/loops/{name}/answer", answer_for(entities))

    assert status == 200 and body["name"] == name
    output = json.loads(served.output(name))
    [answer] = output["humanAnswers"]
    in_order = sorted(entities, key=lambda e: e["startOffset"])
    assert answer["answerContent"] == {CROWD_ELEMENT_NAME: {"entities": in_order}}
    assert answer["timeSpentInSeconds"] == 3.5
    assert output["inputContent"]["text"] == text
    assert len(served.answers) == woken + 1
    assert name not in {loop.name for loop in served.runtime.a2i.pending_loops()}
    assert served.runtime.pending()["MergeFunction"] >= 1  # A2I's status event, for the merge stage


def test_a_loop_answered_already_is_a_conflict(served):
    text = "AWS Glue 4.0 runs Spark."
    name = served.start_loop(text, [found(text, "AWS Glue", "SERVICE", 0.5)])
    assert served.request("POST", f"/api/loops/{name}/answer", answer_for([]))[0] == 200

    status, body, _ = served.request("POST", f"/api/loops/{name}/answer", answer_for([]))
    assert (status, body["error"]) == (409, f"human loop {name} is Completed: it was answered or ended already")
    assert served.request("GET", f"/api/loops/{name}")[0] == 409


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unknown_loop_is_not_found(served, method):
    path = "/api/loops/v1-nope" + ("/answer" if method == "POST" else "")
    status, body, _ = served.request(method, path, answer_for([]) if method == "POST" else None)
    assert (status, body) == (404, {"error": "no human loop v1-nope"})


def test_a_bad_answer_is_refused_and_the_loop_still_waits(served):
    text = "Amazon SQS 😀 FIFO."
    name = served.start_loop(text, [found(text, "Amazon SQS", "SERVICE", 0.5)])
    too_far = {"label": "SERVICE", "startOffset": 13, "endOffset": len(text.encode("utf-16-le")) // 2}

    status, body, _ = served.request("POST", f"/api/loops/{name}/answer", answer_for([too_far]))

    assert status == 400 and f"<= {len(text)}" in body["error"]
    assert name in {loop.name for loop in served.runtime.a2i.pending_loops()}


def test_a_loop_whose_input_is_no_entity_review_is_listed_but_cannot_be_opened(served):
    served.runtime.client(A2I).start_human_loop(HumanLoopName="odd-loop", FlowDefinitionArn=served.runtime.
                                                flow_definition_arn, HumanLoopInput={"InputContent": '{"text": 5}'})

    listed = {loop["name"]: loop for loop in served.request("GET", "/api/queue")[1]["loops"]}
    status, body, _ = served.request("GET", "/api/loops/odd-loop")

    assert "not an entity review" in listed["odd-loop"]["problem"]
    assert status == 422 and "not an entity review" in body["error"]


# --- requests the server refuses -------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "headers", "expected"), [
    (b"{}", {"Content-Type": "text/plain"}, 415),
    (b"{not json", {}, 400),
    (b"\xff\xfe", {}, 400),
    (b"", {"Content-Length": "2000000"}, 413),
    (b"{}", {"Origin": "https://elsewhere.example"}, 403),
    (b"{}", {"Host": "nerloop.example:80"}, 403),
])
def test_a_post_that_is_not_a_json_answer_from_the_page_is_refused(served, body, headers, expected):
    text = "AWS Batch on Fargate."
    name = served.start_loop(text, [found(text, "AWS Batch", "SERVICE", 0.5)])

    status, reply, _ = served.request("POST", f"/api/loops/{name}/answer", body, headers)

    assert status == expected and reply["error"]
    assert name in {loop.name for loop in served.runtime.a2i.pending_loops()}


def test_a_post_without_a_length_is_refused(served):
    connection = http.client.HTTPConnection(served.server.host, served.server.port, timeout=10)
    connection.putrequest("POST", "/api/loops/v1-nope/answer")
    connection.putheader("Content-Type", "application/json")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411
    connection.close()


def test_an_answer_from_the_page_itself_is_taken(served):
    text = "Amazon MQ 5.17."
    name = served.start_loop(text, [found(text, "Amazon MQ", "SERVICE", 0.5)])
    origin = served.server.url.rstrip("/")

    status, _, _ = served.request("POST", f"/api/loops/{name}/answer", answer_for([]), {"Origin": origin})
    assert status == 200


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/api/nothing", 404), ("GET", "/nothing", 404), ("POST", "/api/queue", 404),
    ("GET", "/api/loops/NOT_A_NAME", 404), ("GET", "/static/missing.js", 404), ("DELETE", "/api/queue", 501),
])
def test_unknown_addresses_and_methods_are_refused(served, method, path, expected):
    assert served.request(method, path, b"{}" if method == "POST" else None)[0] == expected


# --- the page and the report -----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "kind", "needle"), [
    ("/", "text/html", b'<script type="module" src="/static/app.js">'),
    ("/static/app.js", "text/javascript", b"codePointsBefore"),
    ("/static/style.css", "text/css", b"mark::after"),
])
def test_the_page_is_served_with_a_content_security_policy(served, path, kind, needle):
    status, body, response = served.request("GET", path)

    assert status == 200 and response.getheader("Content-Type").startswith(kind)
    assert response.getheader("Content-Security-Policy") == PAGE_POLICY
    assert needle in body


def test_the_report_address_says_how_to_make_a_report_until_there_is_one(served):
    status, _, response = served.request("GET", "/report")
    assert (status, response.getheader("Location")) == (308, "/report/")

    status, body, _ = served.request("GET", "/report/")
    assert status == 404 and b"nerloop report" in body


def test_the_report_is_served_from_the_workspace_once_made(served):
    served.report_dir.mkdir(exist_ok=True)
    (served.report_dir / "index.html").write_text("<h1>nerloop report</h1>", encoding="utf-8")
    (served.report_dir / "learning curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    page = served.request("GET", "/report/")
    image = served.request("GET", "/report/learning%20curve.png")

    assert (page[0], page[1]) == (200, b"<h1>nerloop report</h1>")
    assert (image[0], image[2].getheader("Content-Type")) == (200, "image/png")
    (served.report_dir.parent / "secret.txt").write_text("not the report's", encoding="utf-8")
    assert served.request("GET", "/report/../secret.txt")[0] == 404
    assert served.request("GET", "/report/%2e%2e/secret.txt")[0] == 404


def test_the_missing_report_page_escapes_the_path():
    page = missing_report_page(Path("/tmp/<script>x")).decode()
    assert "&lt;script&gt;" in page and "<script>" not in page


# --- the worker template on AWS and the page: one input, one answer shape -----------------------------------


def render_worker_template(template: str, task_input: dict[str, Any]) -> str:
    """The template's Liquid placeholders `{{ task.input.<name> | <filter> ... }}` with the filters it
    uses (to_json, escape), as A2I renders them for a task."""
    filters = {"to_json": json.dumps, "escape": lambda value: html.escape(str(value))}

    def substitute(match: re.Match[str]) -> str:
        value: Any = task_input[match.group(1)]
        for name in re.findall(r"\|\s*(\w+)", match.group(2)):
            value = filters[name](value)
        return str(value)

    rendered = re.sub(r"\{\{\s*task\.input\.(\w+)((?:\s*\|\s*\w+)*)\s*\}\}", substitute, template)
    assert "{{" not in rendered, "a placeholder this test does not render"
    return rendered


def element_attributes(page: str, tag: str) -> dict[str, str | None]:
    """The attributes of the first `tag` element, unescaped as a browser reads them."""
    found: list[dict[str, str | None]] = []

    class Parser(HTMLParser):
        def handle_starttag(self, name: str, attrs: list[tuple[str, str | None]]) -> None:
            if name == tag and not found:
                found.append(dict(attrs))

    Parser().feed(page)
    assert found, f"no <{tag}> in the page"
    return found[0]


def test_the_worker_template_and_the_review_page_read_the_same_input_and_give_the_same_answer(served):
    text = 'Café "😀" <東京> & Amazon S3 2.0 with AWS Lambda.'
    entities = [found(text, "Amazon S3", "SERVICE", 0.41), found(text, "2.0", "VERSION", 0.77),
                found(text, "AWS Lambda", "SERVICE", 0.93), found(text, "東京", "PLACE", 0.5)]
    task_input = json.loads(build_input_content(document_hash(text), text, entities, "v1", TYPES))
    name = served.start_loop(text, entities)

    # On AWS: the worker's crowd-entity-annotation gets the input through the template's placeholders.
    ui = load_template()["Resources"]["ReviewTaskUi"]["Properties"]["UiTemplate"]["Content"]
    widget = element_attributes(render_worker_template(ui, task_input), CROWD_ELEMENT_NAME)
    assert widget["name"] == CROWD_ELEMENT_NAME
    assert widget["text"] == text
    assert json.loads(widget["labels"] or "") == task_input["labels"]
    assert json.loads(widget["initial-value"] or "") == task_input["initialValue"]

    # Locally: the page shows the same text, labels and pre-filled spans ...
    _, document, _ = served.request("GET", f"/api/loops/{name}")
    assert document["text"] == text
    assert [{"label": label} for label in document["labels"]] == task_input["labels"]
    prefilled = [{key: span[key] for key in ("label", "startOffset", "endOffset")} for span in document["spans"]]
    assert sorted(prefilled, key=lambda s: s["startOffset"]) == task_input["initialValue"]

    # ... and its answer (the spans as they stand) is what the merge stage reads from a worker's.
    assert served.request("POST", f"/api/loops/{name}/answer", answer_for(prefilled))[0] == 200
    spans = review_answer(parse_output(served.output(name), f"{name}/output.json"), f"{name}/output.json", text,
                          TYPES).spans
    assert spans == sorted(Span(e.begin, e.end, e.type) for e in entities if e.type in TYPES)


# --- a round running -------------------------------------------------------------------------------------


def test_while_a_round_holds_the_runtime_an_answer_is_taken_at_once_and_handed_over_after(served):
    text = "Amazon Kinesis 2.1 streams data."
    name = served.start_loop(text, [found(text, "Amazon Kinesis", "SERVICE", 0.4)])
    desk = served.server.desk
    served.request("GET", "/api/queue")  # read while no round runs
    holding, release = threading.Event(), threading.Event()

    def round_running() -> None:
        with desk.lock:
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=round_running)
    thread.start()
    holding.wait(5)
    try:
        started = time.monotonic()
        status, body, _ = served.request("POST", f"/api/loops/{name}/answer", answer_for([]))
        again, _, _ = served.request("POST", f"/api/loops/{name}/answer", answer_for([]))
        queue = [loop["name"] for loop in served.request("GET", "/api/queue")[1]["loops"]]
        page_status = served.request("GET", "/api/status")[1]
        took = time.monotonic() - started
    finally:
        release.set()
        thread.join()

    assert (status, body["queued"], again) == (202, True, 409)
    assert took < 2  # nothing waited for the round
    assert name not in queue
    assert (page_status["answers_waiting"], page_status["working"]) == (1, True)
    assert name in {loop.name for loop in served.runtime.a2i.pending_loops()}  # A2I has it not yet
    with desk.lock:
        assert desk.deliver() == 1
    [answer] = json.loads(served.output(name))["humanAnswers"]
    assert answer["workerId"] == "local-reviewer"
    assert served.request("GET", "/api/status")[1]["answers_waiting"] == 0


def test_an_answer_names_its_worker_and_a_bad_worker_id_is_refused(served):
    text = "Amazon Redshift 3.0 scales."
    name = served.start_loop(text, [found(text, "Amazon Redshift", "SERVICE", 0.4)])

    refused = served.request("POST", f"/api/loops/{name}/answer", {**answer_for([]), "worker": "<script>"})
    status, body, _ = served.request("POST", f"/api/loops/{name}/answer", {**answer_for([]), "worker": "ana.b"})

    assert refused[0] == 400 and "worker must be" in refused[1]["error"]
    assert (status, body["worker"]) == (200, "ana.b")
    [answer] = json.loads(served.output(name))["humanAnswers"]
    assert answer["workerId"] == "ana.b"
