"""Running workloads in fresh child processes, and the statistics the table shows."""

from __future__ import annotations

import json
import os
import statistics
import subprocess  # nosec B404 # runs this repository's own benchmark children
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nerloop_local.emulator.isolation import use_fake_credentials

REPO = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(str(REPO / part) for part in ("layers/common", "local", "."))


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a child: fake credentials (nothing may reach AWS), no tracing (there is
    no X-Ray daemon), the repo's packages on the path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "POWERTOOLS_"))}
    use_fake_credentials(env)
    env.update({
        "PYTHONPATH": PYTHONPATH, "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO", "POWERTOOLS_SERVICE_NAME": "nerloop-bench",
        "POWERTOOLS_METRICS_NAMESPACE": "nerloop", "PYTHONHASHSEED": "0",
    })
    env.update(extra or {})
    return env


def run_workload(name: str, params: Mapping[str, Any], env: Mapping[str, str] | None = None,
                 timeout: float = 1800) -> dict[str, Any]:
    """Run one workload in a fresh interpreter (so peaks of different sizes never mix); its result."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_path = Path(out.name)
    try:
        completed = subprocess.run(  # nosec B603 # our own interpreter and module, no shell
            [sys.executable, "-m", "bench.workloads", name, json.dumps(dict(params)), str(out_path)],
            cwd=REPO, env=child_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"workload {name} failed:\n{completed.stderr.decode(errors='replace')[-3000:]}")
        return dict(json.loads(out_path.read_text(encoding="utf-8")))
    finally:
        out_path.unlink(missing_ok=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def side_by_side(name: str, reference: str, params: Mapping[str, Any], repeats: int,
                 env: Mapping[str, str] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Alternate the workload and its reference `repeats` times (so drift hits both alike)."""
    measured: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    for _ in range(repeats):
        references.append(run_workload(reference, params, env))
        measured.append(run_workload(name, params, env))
    return measured, references

