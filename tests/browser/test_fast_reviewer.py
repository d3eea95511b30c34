"""A fast reviewer on `nerloop up`'s review page, in real headless Chromium: 30 presses of Enter
("accept as it stands") at 4 a second, while the service's rounds merge, retrain, detect and route,
end with 30 merged reviews: none lost, none merged twice. The page never waits on a round.
A screenshot of the page after the presses is saved to test-artifacts/review-page-fast.png."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop.retrain import REVIEWS
from nerloop_local.commands.up import Service
from tests.browser.review_service import get_json

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "review-page-fast.png"
SEED_LINES = 40
PRESSES = 30
PRESS_INTERVAL_MS = 250  # 4 a second
# Every document is routed (a budget larger than the batch, a threshold no score reaches), and a retrain
# falls due every 10 reviews: rounds that train, detect and route run while the reviewer presses on.
PARAMETERS = {"TestShare": "0", "ConfidenceThreshold": "0.999", "ReviewBudget": "100", "RetrainBatchSize": "10"}
MERGE_TIMEOUT_S = 240
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path, serve_up: Any) -> Iterator[Service]:
    """`nerloop up` with the review page on a free port, once more than PRESSES human loops wait."""
    lines = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:90]
    with serve_up(tmp_path_factory.mktemp("fast-reviewer"), lines, PARAMETERS, SEED_LINES, "nerloop-up-fast") as up:
        deadline = time.monotonic() + 180
        while up.service.review_url is None or get_json(up.service.review_url, "/api/status")["working"] \
                or get_json(up.service.review_url, "/api/status")["reviews"]["loops_waiting"] <= PRESSES:
            up.check(deadline, f"fewer than {PRESSES + 1} loops wait")
            time.sleep(0.2)
        yield up.service


def completed_by_the_page(up: Service) -> dict[str, list[str]]:
    """Each human loop the A2I stand-in completed: the workers in its output.json."""
    with up.lock:
        runtime = up.runtime
        done = {}
        for loop in runtime.a2i.loops.values():
            if loop.status == "Completed" and loop.output_uri:
                output = json.loads(runtime.get_bytes(loop.output_uri.split("/", 3)[3]))
                done[loop.name] = [answer["workerId"] for answer in output["humanAnswers"]]
        return done


def test_thirty_enter_presses_at_four_a_second_merge_thirty_reviews(browser: Any, service: Service) -> None:
    url = service.review_url
    assert url is not None
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("#queue button[aria-current=true]")
    before = get_json(url, "/api/status")["reviews"]["merged"]
    with service.lock:
        counted_before = service.runtime.state.counters.get(REVIEWS)
    answered_before = completed_by_the_page(service)

    started = time.monotonic()
    for _ in range(PRESSES):
        page.keyboard.press("Enter")
        page.wait_for_timeout(PRESS_INTERVAL_MS)
    pressing = time.monotonic() - started
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"\nscreenshot: {SCREENSHOT}")

    deadline = time.monotonic() + MERGE_TIMEOUT_S
    while True:
        status = get_json(url, "/api/status")
        if status["reviews"]["merged"] >= before + PRESSES and not status["answers_waiting"] \
                and not status["working"]:
            break
        assert time.monotonic() < deadline, (status, service.out.getvalue()[-3000:])
        time.sleep(0.5)
    from playwright.sync_api import expect

    expect(page.locator("#merged")).to_have_text(str(before + PRESSES), timeout=30_000)
    context.close()

    answered = {name: workers for name, workers in completed_by_the_page(service).items()
                if name not in answered_before}
    assert pressing < PRESSES * PRESS_INTERVAL_MS / 1000 + 5  # the presses themselves never waited
    assert len(answered) == PRESSES  # 30 distinct loops, each answered once: none lost ...
    assert all(workers == ["local-reviewer"] for workers in answered.values())
    with service.lock:
        state = service.runtime.state
        assert state.counters.get(REVIEWS) == counted_before + PRESSES  # ... and none merged twice
        assert all(state.loops.get(name).status == "Completed" for name in answered)
        gold = {name: state.gold.get(state.loops.get(name).doc) for name in answered}
    assert all(doc is not None and doc.origin == f"review:{name}" for name, doc in gold.items())
    assert get_json(url, "/api/status")["reviews"]["merged"] == before + PRESSES
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")
    assert errors == []
