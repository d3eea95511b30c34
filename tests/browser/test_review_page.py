"""The review page in real headless Chromium, served by `nerloop up` (a Service in a thread): a seed
trains v1, an inbox file's documents are detected and routed to human loops, and a person answers
them in the page. A screenshot of the page is saved to test-artifacts/review-page.png."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from nerloop.documents import Span
from nerloop_local.commands.up import Service
from nerloop_local.standins.a2i import A2I

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "review-page.png"
SEED_LINES = 40
UNICODE_LINE = "Café 😀 東京: Amazon S3 now supports AWS Lambda 2.0 in Zürich."
# Every document with an entity is reviewed; a 40-line seed is too small to hold out a test set too.
PARAMETERS = {"TestShare": "0", "ConfidenceThreshold": "0.999", "RetrainBatchSize": "3"}
TIMEOUT_MS = 60_000  # a round that merges a review may train a version, detect and route: allow for it
# Powertools warns on every invocation when metrics are disabled and none were added (the service's thread).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@dataclass
class Running:
    service: Service
    url: str

    def api(self, path: str) -> Any:
        address = urlsplit(self.url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status == 200, body
        return json.loads(body)

    def with_runtime(self, read: Callable[[Any], Any]) -> Any:
        """Read the runtime between the service's rounds."""
        with self.service.lock:
            return read(self.service.runtime)

    def output_entities(self, name: str) -> list[dict[str, Any]]:
        def read(runtime: Any) -> Any:
            uri = runtime.client(A2I).describe_human_loop(HumanLoopName=name)["HumanLoopOutput"]["OutputS3Uri"]
            return json.loads(runtime.get_bytes(uri.split("/", 3)[3]))

        [answer] = self.with_runtime(read)["humanAnswers"]
        return answer["answerContent"]["crowd-entity-annotation"]["entities"]

    def gold_spans(self, doc: str) -> list[Span]:
        gold = self.with_runtime(lambda runtime: runtime.state.gold.get(doc))
        assert gold is not None, f"document {doc} is not in the gold set"
        return sorted(gold.spans)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path, serve_up: Any) -> Iterator[Running]:
    """`nerloop up` with the review page on a free port, a seed manifest and one inbox file; ready once its
    human loops wait."""
    lines = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:6]
    with serve_up(tmp_path_factory.mktemp("review-page"), [*lines, UNICODE_LINE], PARAMETERS, SEED_LINES) as up:
        deadline = time.monotonic() + 120
        while up.service.review_url is None:
            up.check(deadline, "the review page did not start")
            time.sleep(0.05)
        running = Running(up.service, up.service.review_url)
        # The page answers at once, from what was read last, while round 1 runs: wait for its loops.
        while running.api("/api/status")["reviews"]["loops_waiting"] == 0:
            up.check(deadline, "no human loop waits")
            time.sleep(0.2)
        yield running


@pytest.fixture
def page(browser: Any, running: Running) -> Iterator[Any]:
    """A fresh page on the review queue; no script error may happen in it."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    opened.goto(running.url)
    opened.wait_for_selector("#queue button[aria-current=true]")
    yield opened
    context.close()
    assert errors == []


# --- helpers -----------------------------------------------------------------------------------------------


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def select_code_points(page: Any, start: int, end: int) -> None:
    """Select the document's code points start..end (end exclusive) with the mouse, as a person would:
    press in the left half of the first character and release in the right half of the last."""
    boxes = page.evaluate("""([start, end]) => {
        const walker = document.createTreeWalker(document.getElementById("text"), NodeFilter.SHOW_TEXT);
        const found = {};
        let count = 0;
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            let unit = 0;
            for (const character of node.data) {
                if (count === start) found.first = [node, unit, character.length];
                if (count === end - 1) found.last = [node, unit, character.length];
                count += 1;
                unit += character.length;
            }
        }
        const box = ([node, unit, length]) => {
            const range = document.createRange();
            range.setStart(node, unit);
            range.setEnd(node, unit + length);
            const rect = range.getBoundingClientRect();
            return {left: rect.left, right: rect.right, y: rect.top + rect.height / 2};
        };
        return {first: box(found.first), last: box(found.last)};
    }""", [start, end])
    page.mouse.move(boxes["first"]["left"] + 1, boxes["first"]["y"])
    page.mouse.down()
    page.mouse.move(boxes["last"]["right"] - 1, boxes["last"]["y"], steps=4)
    page.mouse.up()


def open_loop(page: Any, name: str) -> None:
    page.click(f'#queue button[data-loop="{name}"]')
    expect(page.locator("#doc-meta")).to_contain_text(name)


def current_loop(page: Any) -> str:
    return str(page.get_attribute("#queue button[aria-current=true]", "data-loop"))


def free_word(text: str, spans: list[dict[str, Any]], minimum: int = 4) -> tuple[int, int]:
    """A word of letters that no span touches."""
    for match in re.finditer(rf"[A-Za-z]{{{minimum},}}", text):
        if all(match.end() < s["startOffset"] or s["endOffset"] < match.start() for s in spans):
            return match.start(), match.end()
    raise AssertionError(f"no free word in {text!r}")


def as_tuples(spans: list[dict[str, Any]]) -> set[tuple[int, int, str]]:
    return {(s["startOffset"], s["endOffset"], s["label"]) for s in spans}


def merged(running: Running) -> int:
    return int(running.api("/api/status")["reviews"]["merged"])


# --- the tests ---------------------------------------------------------------------------------------------


def test_the_queue_lists_the_waiting_loops_least_confident_first(page, running):
    queue = running.api("/api/queue")["loops"]
    shown = page.locator("#queue button[data-loop]")

    expect(shown).to_have_count(len(queue))
    assert [shown.nth(i).get_attribute("data-loop") for i in range(len(queue))] == [loop["name"] for loop in queue]
    scores = [float(text) for text in page.locator("#queue .score").all_inner_texts()]
    assert scores == sorted(scores)
    assert current_loop(page) == queue[0]["name"]
    expect(page.locator("#waiting")).to_have_text(str(len(queue)))


def test_arrow_keys_move_between_documents_and_s_skips_one(page, running):
    names = [loop["name"] for loop in running.api("/api/queue")["loops"]]

    page.keyboard.press("ArrowDown")
    expect(page.locator("#doc-meta")).to_contain_text(names[1])
    page.keyboard.press("ArrowUp")
    expect(page.locator("#doc-meta")).to_contain_text(names[0])
    page.keyboard.press("s")

    expect(page.locator("#doc-meta")).to_contain_text(names[1])
    expect(page.locator("#queue button[data-loop]").last).to_have_attribute("data-loop", names[0])
    expect(page.locator("#queue button[data-loop]").last).to_have_class(re.compile("skipped"))


def test_a_reviewer_adds_relabels_and_removes_spans_and_submits_with_the_keyboard(page, running):
    documents = [running.api(f"/api/loops/{loop['name']}") for loop in running.api("/api/queue")["loops"]]
    doc = next(d for d in documents if len(d["spans"]) >= 2 and d["text"].isascii())
    labels, spans = doc["labels"], doc["spans"]  # spans: least confident first
    open_loop(page, doc["name"])
    before = merged(running)
    expect(page.locator("#merged")).to_have_text(str(before))

    start, end = free_word(doc["text"], spans)
    select_code_points(page, start, end)
    page.keyboard.press("1")
    expect(page.locator(f'#text mark[data-start="{start}"]')).to_have_text(doc["text"][start:end])

    relabeled, removed = spans[0], spans[1]
    new_label = next(label for label in labels if label != relabeled["label"])
    page.click(f'#text mark[data-start="{relabeled["startOffset"]}"]')
    page.keyboard.press(str(labels.index(new_label) + 1))
    expect(page.locator(f'#text mark[data-start="{relabeled["startOffset"]}"]')).to_have_attribute(
        "data-badge", new_label)
    page.click(f'#text mark[data-start="{removed["startOffset"]}"]')
    page.keyboard.press("Delete")
    expect(page.locator(f'#text mark[data-start="{removed["startOffset"]}"]')).to_have_count(0)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.keyboard.press("Enter")

    expect(page.locator("#merged")).to_have_text(str(before + 1), timeout=TIMEOUT_MS)
    expected = ({(start, end, labels[0]), (relabeled["startOffset"], relabeled["endOffset"], new_label)}
                | as_tuples(spans[2:]))
    assert as_tuples(running.output_entities(doc["name"])) == expected
    assert running.gold_spans(doc["document"]) == sorted(Span(*item) for item in expected)
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")


def test_offsets_stay_exact_code_points_after_an_emoji_and_cjk(page, running):
    [doc] = [running.api(f"/api/loops/{loop['name']}") for loop in running.api("/api/queue")["loops"]
             if loop["preview"] == UNICODE_LINE]
    text, spans = doc["text"], doc["spans"]
    open_loop(page, doc["name"])
    expect(page.locator("#doc-meta")).to_contain_text(f"{len(text)} characters")
    for span in spans:  # the model's spans, placed by code points
        expect(page.locator(f'#text mark[data-start="{span["startOffset"]}"]')).to_have_text(
            text[span["startOffset"]:span["endOffset"]])
    free = [word for word in ("東京", "Zürich") if all(
        text.index(word) + len(word) <= s["startOffset"] or s["endOffset"] <= text.index(word) for s in spans)]
    assert free, f"the model's spans {spans} cover every word this test labels"
    before = merged(running)

    for number, word in enumerate(free, start=1):
        begin = text.index(word)
        select_code_points(page, begin, begin + len(word))
        page.keyboard.press(str(number))
        expect(page.locator(f'#text mark[data-start="{begin}"]')).to_have_text(word)
    page.keyboard.press("Enter")

    expect(page.locator("#merged")).to_have_text(str(before + 1), timeout=TIMEOUT_MS)
    entities = running.output_entities(doc["name"])
    added = {text[e["startOffset"]:e["endOffset"]]: e["label"] for e in entities}
    assert {word: added.get(word) for word in free} == {word: doc["labels"][i] for i, word in enumerate(free)}
    assert as_tuples(entities) == as_tuples(spans) | {(text.index(w), text.index(w) + len(w), doc["labels"][i])
                                                      for i, w in enumerate(free)}


def test_accepting_documents_as_they_stand_fills_the_batch_and_a_retrain_starts(page, running):
    status = running.api("/api/status")
    reviews, versions = status["reviews"], status["versions"]
    accepted: dict[str, list[dict[str, Any]]] = {}

    for count in range(reviews["retrain_batch_size"] - reviews["toward_next_retrain"]):
        name = current_loop(page)
        accepted[name] = running.api(f"/api/loops/{name}")["spans"]
        expect(page.locator("#submit")).to_contain_text("Accept as it stands")
        page.keyboard.press("Enter")
        expect(page.locator("#merged")).to_have_text(str(reviews["merged"] + count + 1), timeout=TIMEOUT_MS)
        expect(page.locator("#queue button[aria-current=true]")).not_to_have_attribute("data-loop", name)

    expect(page.locator("#latest")).to_contain_text(f"v{versions + 1}", timeout=TIMEOUT_MS)
    for name, spans in accepted.items():
        assert as_tuples(running.output_entities(name)) == as_tuples(spans)
