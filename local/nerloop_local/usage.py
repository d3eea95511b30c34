"""What every command shares: the error a bad command line raises, and the default paths. A leaf module
(it imports nothing of nerloop's), so commands, reports and the bench import it, never `cli.py`."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SAMPLE = Path(os.environ.get("NERLOOP_SAMPLE_DATA", REPO.parent / "shared/data/aws-service-offerings"))


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""
