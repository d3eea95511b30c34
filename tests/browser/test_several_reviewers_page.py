"""Two reviewers per document (ReviewersPerDocument=2) on `nerloop up`'s review page, in headless
Chromium: each reviewer names themself in the page's header and answers every document once; a
document both accept is merged, one they disagree on is a tie and goes back to waiting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop.state import WAITING
from nerloop_local.commands.up import Service
from tests.browser.review_service import get_json

PARAMETERS = {"TestShare": "0", "ConfidenceThreshold": "0.999", "RetrainBatchSize": "50", "ReviewersPerDocument": "2"}
TIMEOUT_MS = 60_000
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path, serve_up: Any) -> Iterator[Service]:
    lines = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:8]
    with serve_up(tmp_path_factory.mktemp("two-reviewers"), lines, PARAMETERS, name="nerloop-up-two") as up:
        deadline = time.monotonic() + 180
        while up.service.review_url is None or get_json(up.service.review_url, "/api/status")["working"] \
                or get_json(up.service.review_url, "/api/status")["reviews"]["loops_waiting"] < 2:
            up.check(deadline, "fewer than 2 loops wait")
            time.sleep(0.2)
        yield up.service


def as_worker(page: Any, worker: str) -> None:
    page.fill("#worker", worker)
    page.locator("#worker").dispatch_event("change")


def answer(page: Any, name: str, remove_first_span: bool = False) -> None:
    page.click(f'#queue button[data-loop="{name}"]')
    page.wait_for_selector(f'#doc-meta:has-text("{name}")')
    if remove_first_span:
        from playwright.sync_api import expect

        marks = page.locator("#text mark")
        expect(marks.first).to_be_visible()
        shown = marks.count()
        page.click("#text mark >> nth=0")
        page.keyboard.press("Delete")
        expect(marks).to_have_count(shown - 1)  # the removal took before the answer is sent
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#queue button[data-loop="{name}"]', state="detached")


def test_two_reviewers_who_agree_are_merged_and_two_who_disagree_send_the_document_back(browser, service):
    url = service.review_url
    loops = [loop for loop in get_json(url, "/api/queue?worker=ana")["loops"] if loop["spans"] >= 1]
    agreed, disputed = loops[0]["name"], loops[1]["name"]
    assert loops[0]["reviewers"] == {"needed": 2, "answered": 0}
    before = get_json(url, "/api/status")["reviews"]["merged"]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(url)
    page.wait_for_selector("#queue button[aria-current=true]")

    as_worker(page, "ana")
    answer(page, agreed)
    answer(page, disputed)
    as_worker(page, "ben")
    page.wait_for_selector(f'#queue button[data-loop="{agreed}"]:has-text("1 of 2 reviewers")')
    answer(page, agreed)
    answer(page, disputed, remove_first_span=True)

    from playwright.sync_api import expect

    expect(page.locator("#merged")).to_have_text(str(before + 1), timeout=TIMEOUT_MS)
    context.close()
    with service.lock:
        state = service.runtime.state
        merged, tied = state.loops.get(agreed), state.loops.get(disputed)
        assert merged.status == "Completed" and state.gold.get(merged.doc) is not None
        assert tied.status == "Failed" and "reviewers tied" in tied.failure
        assert state.pool.get(tied.doc).status == WAITING and state.gold.get(tied.doc) is None
