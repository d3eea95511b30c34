"""Two reviewers per document (ReviewersPerDocument=2) on `nerloop up`'s review page, in headless
Chromium: each reviewer names themself in the page's header and answers every document once; a
document both accept is merged, one they disagree on is a tie and goes back to waiting."""

from __future__ import annotations

import http.client
import io
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from nerloop.state import WAITING
from nerloop_local.service import Service, ServiceOptions

PARAMETERS = {"TestShare": "0", "ConfidenceThreshold": "0.999", "RetrainBatchSize": "50", "ReviewersPerDocument": "2"}
TIMEOUT_MS = 60_000
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def get(url: str, path: str) -> Any:
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 200, body
    return json.loads(body)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Iterator[Service]:
    base = tmp_path_factory.mktemp("two-reviewers")
    inbox = base / "inbox"
    inbox.mkdir()
    seed = base / "seed.manifest"
    with (sample_dir / "output.manifest").open("rb") as handle:
        seed.write_bytes(b"".join(itertools.islice(handle, 40)))
    inbox_file = inbox / "offerings.txt"
    inbox_file.write_text("\n".join((sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:8]) + "\n",
                          encoding="utf-8")
    os.utime(inbox_file, (time.time() - 60, time.time() - 60))
    up = Service(ServiceOptions(workspace=base / "workspace", inbox=inbox, interval=3600, seed_manifest=seed,
                                parameters=PARAMETERS, review_port=0), out=io.StringIO())
    thread = threading.Thread(target=up.run, name="nerloop-up-two", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 180
        while up.review_url is None or get(up.review_url, "/api/status")["working"] \
                or get(up.review_url, "/api/status")["reviews"]["loops_waiting"] < 2:
            assert thread.is_alive() and time.monotonic() < deadline, up.out.getvalue()
            time.sleep(0.2)
        yield up
    finally:
        up.stop()
        thread.join(120)


def as_worker(page: Any, worker: str) -> None:
    page.fill("#worker", worker)
    page.locator("#worker").dispatch_event("change")


def answer(page: Any, name: str, remove_first_span: bool = False) -> None:
    page.click(f'#queue button[data-loop="{name}"]')
    page.wait_for_selector(f'#doc-meta:has-text("{name}")')
    if remove_first_span:
        page.click("#text mark >> nth=0")
        page.keyboard.press("Delete")
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#queue button[data-loop="{name}"]', state="detached")


def test_two_reviewers_who_agree_are_merged_and_two_who_disagree_send_the_document_back(browser, service):
    url = service.review_url
    loops = [loop for loop in get(url, "/api/queue?worker=ana")["loops"] if loop["spans"] >= 1]
    agreed, disputed = loops[0]["name"], loops[1]["name"]
    assert loops[0]["reviewers"] == {"needed": 2, "answered": 0}
    before = get(url, "/api/status")["reviews"]["merged"]
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
        merged, tied = state.get_loop(agreed), state.get_loop(disputed)
        assert merged.status == "Completed" and state.get_gold(merged.doc) is not None
        assert tied.status == "Failed" and "reviewers tied" in tied.failure
        assert state.get_pool(tied.doc).status == WAITING and state.get_gold(tied.doc) is None
