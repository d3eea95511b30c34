"""Document text is never logged at INFO: a small local loop with the handlers' logger at INFO, every
record it writes captured (formatted as on Lambda, extra keys included), searched for the text of
every document the handlers touched."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop.observability import logger as handlers_logger
from nerloop_local.emulator.runtime import LocalRuntime


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def info_logs() -> Iterator[Captured]:
    """The handlers' logger at INFO (whatever level an earlier test left), its records captured."""
    captured = Captured()
    captured.setFormatter(handlers_logger.registered_formatter)
    level = handlers_logger.log_level
    handlers_logger.addHandler(captured)
    handlers_logger.setLevel(logging.INFO)
    yield captured
    handlers_logger.removeHandler(captured)
    handlers_logger.setLevel(level)


def test_no_document_text_reaches_the_logs_at_info(tmp_path: Path, sample_dir: Path, info_logs: Captured) -> None:
    with (sample_dir / "output.manifest").open("rb") as manifest:
        seed_manifest = b"".join(itertools.islice(manifest, 45))
    raw_lines = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:12]

    def reviewer(loop_name: str, content: dict[str, Any]) -> list[dict[str, Any]]:
        return [dict(item) for item in content["initialValue"]]

    parameters = {"EntityTypes": "SERVICE,VERSION", "ConfidenceThreshold": "0.999",
                  "RetrainBatchSize": "3", "ReviewBudget": "3", "TestShare": "0"}
    with LocalRuntime(tmp_path, parameters, reviewer=reviewer,
                      environment={"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "INFO"}) as runtime:
        runtime.put_text("raw/offerings.txt", "\n".join(raw_lines) + "\n")
        runtime.label_with_manifest(seed_manifest, job_name=f"{runtime.stack.labeling_job_prefix()}-logs-seed")
        result = runtime.run_until_idle(max_cycles=100)
        texts = ({doc.text for doc in runtime.state.pool.documents()}
                 | {gold.text for gold in runtime.state.gold.documents()})
    logs = "\n".join(info_logs.lines)

    assert result.idle and not result.failures
    # The handlers did log at INFO: the stages' own messages are there.
    for message in ("batch preprocessed", "detection job started", "detection output routed"):
        assert message in logs, message
    leaked = [text for text in texts if len(text) >= 20 and text in logs]
    assert leaked == [], f"{len(leaked)} document texts in the INFO logs, e.g. {leaked[0]!r}"
