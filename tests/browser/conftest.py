"""Real headless Chromium (Debian's /usr/bin/chromium, or the one NERLOOP_CHROMIUM names) driven by
Playwright for Python, one browser for the session. Without Chromium or Playwright the browser tests are
skipped, and the summary says so in one line with how to get them; under CI (env CI set) they fail
instead: CI installs both (`apt-get install -y chromium`, `pip install playwright`; never
`playwright install`, which would download another browser)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.review_service import serving

CHROMIUM = Path(os.environ.get("NERLOOP_CHROMIUM") or "/usr/bin/chromium")
HERE = Path(__file__).resolve().parent
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install -y chromium, or set NERLOOP_CHROMIUM to a Chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: under CI the browser tests must run")
        pytest.skip(f"{missing}; the browser tests run in CI")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> Iterator[None]:
    """Browser tests skipped for want of a browser: one line saying how many and how to get them, in place
    of a line per test in the short summary (the final count still includes them)."""
    missing, stats = _missing(), terminalreporter.stats
    ours = [report for report in stats.get("skipped", []) if missing and missing in str(report.longrepr)
            and (config.rootpath / report.nodeid.split("::")[0]).resolve().is_relative_to(HERE)]
    if not ours:
        yield
        return
    others = [report for report in stats["skipped"] if report not in ours]
    terminalreporter.write_line(f"browser tests: {len(ours)} skipped: {missing}", yellow=True, bold=True)
    stats["skipped"] = others
    try:
        yield
    finally:
        stats["skipped"] = others + ours


@pytest.fixture(scope="session")
def serve_up(sample_dir: Path) -> Callable[..., Any]:
    """`with serve_up(base, inbox_lines, parameters) as up:` (tests.browser.review_service.serving on the
    sample)."""
    return lambda *args, **kwargs: serving(sample_dir, *args, **kwargs)
