"""The benchmarks' configuration, table rows and cached inputs (generated once per seed and size by
bench/generate.py into a cache directory, and reused)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.generate import (
    GENERATOR_VERSION,
    iter_gold_items,
    iter_pool_items,
    load_sample,
    write_detection_output,
    write_manifest,
)
from bench.standins import SqliteTable

DEFAULT_CACHE = Path(os.environ.get("NERLOOP_BENCH_CACHE", Path(tempfile.gettempdir()) / "nerloop-bench-cache"))
SEED = 20240601


@dataclass
class Config:
    convert_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    convert_repeats: dict[int, int] = field(default_factory=lambda: {1_000_000: 1})
    walkthrough_sizes: tuple[int, ...] = (100_000, 1_000_000)
    route_sizes: tuple[int, ...] = (10_000, 100_000)
    merge_loops: int = 10_000
    merge_gold: int = 20_000
    snapshot_gold: int = 200_000
    repeats: int = 3
    import_repeats: int = 15
    cache: Path = DEFAULT_CACHE
    seed: int = SEED
    # The latency rows (bench/at_latency.py): profile ("none" skips them), sizes up to the targets' (convert
    # lines; route documents with their review budget), and the longest a size may be predicted to take
    # (from the size before it) and still be run (720 s: the ~12 minutes a size may take on this 2-core machine);
    # beyond that its time is extrapolated and said so.
    latency: str = "aws"
    latency_convert_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    latency_route_sizes: tuple[tuple[int, int], ...] = ((10_000, 1_000), (100_000, 10_000))
    latency_merge_loops: int = 200
    latency_run_limit_seconds: float = 720

    def repeats_for(self, size: int) -> int:
        return self.convert_repeats.get(size, self.repeats)


QUICK = Config(convert_sizes=(300, 1_000), convert_repeats={}, walkthrough_sizes=(1_000,), route_sizes=(300, 1_000),
               merge_loops=60, merge_gold=100, snapshot_gold=500, repeats=1, import_repeats=1,
               latency_convert_sizes=(300, 1_000), latency_route_sizes=((300, 30), (1_000, 100)),
               latency_merge_loops=30, latency_run_limit_seconds=60)


@dataclass
class Row:
    benchmark: str
    size: str
    measured: str
    reference: str
    ratio: str = ""
    target: str = ""
    ok: bool | None = None


def _label_attribute() -> str:
    return load_sample().label_attribute


# --- inputs ----------------------------------------------------------------------------------------


def cached(path: Path, make: Callable[[Path], Any]) -> Path:
    """`path` (a file or a folder), made by `make(temporary path)` unless already there (renamed into
    place when whole, so an interrupted run never leaves a partial input behind)."""
    path = path.with_name(f"g{GENERATOR_VERSION}-{path.name}")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        if partial.is_file():
            partial.unlink()
        make(partial)
        partial.rename(path)
    return path


def manifest(config: Config, lines: int) -> Path:
    return cached(config.cache / f"manifest-{config.seed}-{lines}.jsonl",
                  lambda path: write_manifest(path, lines, config.seed))


def detection(config: Config, documents: int) -> dict[str, str]:
    """Input file, archive and a state-table file holding the job and the pool, for the route stage."""
    job_id = "0123456789abcdef0123456789abcdef"
    input_key = f"detection/input/{job_id}/documents.txt"

    def make(folder: Path) -> None:
        folder.mkdir(parents=True)
        write_detection_output(folder / "documents.txt", folder / "output.tar.gz", documents, config.seed)
        table = SqliteTable(folder / "state.sqlite")
        table.load_items(iter_pool_items(folder / "documents.txt"))
        table.load_items(iter([{"pk": "JOB", "sk": job_id, "status": "COMPLETED", "version": "v1",
                                "input_key": input_key, "documents": documents, "arn": "", "created_at": ""}]))
        table.close()

    folder = cached(config.cache / f"detection-{config.seed}-{documents}", make)
    return {"input": str(folder / "documents.txt"), "archive": str(folder / "output.tar.gz"),
            "state": str(folder / "state.sqlite"), "input_key": input_key,
            "archive_key": f"detection/output/123456789012-NER-{job_id}/output/output.tar.gz"}


def gold_state(config: Config, documents: int) -> Path:
    def make(path: Path) -> None:
        table = SqliteTable(path)
        table.load_items(iter_gold_items(documents, config.seed + 7))
        table.close()

    return cached(config.cache / f"gold-{config.seed}-{documents}.sqlite", make)
