"""Without a browser (and outside CI) the browser tests are skipped, and pytest's summary says so in one
line with how to get them."""

from __future__ import annotations

import os
import subprocess  # nosec B404 # runs this repository's own test suite
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_skipped_browser_tests_are_named_in_one_summary_line(tmp_path: Path) -> None:
    # Given no CI and a browser path that points at nothing
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env["NERLOOP_CHROMIUM"] = str(tmp_path / "no-chromium")

    run = subprocess.run(  # nosec B603 # a fixed argument list
        [sys.executable, "-m", "pytest", "tests/browser", "-p", "no:cacheprovider", "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)

    # Then every browser test is skipped and one line says how many, why, and how to get them
    assert run.returncode == 0, run.stdout + run.stderr
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("browser tests: ")]
    count = int(line.split()[2])
    assert f"{count} skipped" in run.stdout.splitlines()[-1] and count > 0
    assert f"{tmp_path / 'no-chromium'} is not installed" in line
    assert "apt-get install -y chromium" in line and "NERLOOP_CHROMIUM" in line
    assert "SKIPPED" not in run.stdout  # not a line a test besides (pytest's -ra)
