"""`nerloop up` in a thread for the browser tests, and a JSON read from its review page's service."""

from __future__ import annotations

import http.client
import io
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nerloop_local.commands.up import Service, ServiceOptions


def get_json(url: str, path: str, timeout: float = 30) -> Any:
    """GET `path` from the review page's service at `url`; its JSON (the status must be 200)."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=timeout)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 200, body
    return json.loads(body)


@dataclass
class Serving:
    """`nerloop up` running in a thread; `check()` fails the test once the service stopped or raised."""

    service: Service
    thread: threading.Thread
    failures: list[BaseException] = field(default_factory=list)

    def check(self, deadline: float, what: str) -> None:
        assert not self.failures and self.thread.is_alive(), \
            f"nerloop up stopped: {self.failures}\n{self.service.out.getvalue()}"
        assert time.monotonic() < deadline, f"{what}:\n{self.service.out.getvalue()}"


@contextmanager
def serving(sample_dir: Path, base: Path, inbox_lines: list[str], parameters: dict[str, str], seed_lines: int = 40,
            name: str = "nerloop-up") -> Iterator[Serving]:
    """`nerloop up` with the review page on a free port, a seed of the sample's first `seed_lines` labelled
    lines and one inbox file (written a minute ago, so round 1 takes it); stopped at the end, and a failure
    of its thread fails the test."""
    inbox = base / "inbox"
    inbox.mkdir()
    seed = base / "seed.manifest"
    with (sample_dir / "output.manifest").open("rb") as handle:
        seed.write_bytes(b"".join(itertools.islice(handle, seed_lines)))
    inbox_file = inbox / "offerings.txt"
    inbox_file.write_text("\n".join(inbox_lines) + "\n", encoding="utf-8")
    os.utime(inbox_file, (time.time() - 60, time.time() - 60))
    service = Service(ServiceOptions(workspace=base / "workspace", inbox=inbox, interval=3600,
                                     seed_manifest=seed, parameters=parameters, review_port=0),
                      out=io.StringIO())
    failures: list[BaseException] = []

    def run() -> None:
        try:
            service.run()
        except BaseException as exc:
            failures.append(exc)

    up = Serving(service, threading.Thread(target=run, name=name, daemon=True), failures)
    up.thread.start()
    try:
        yield up
    finally:
        service.stop()
        up.thread.join(120)
    assert not up.failures, up.failures

