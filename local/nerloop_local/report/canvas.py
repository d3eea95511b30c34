"""The reports' plots: matplotlib figures on its Agg canvas (no display needed), saved as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(width: float = 7.0, height: float = 4.2) -> Figure:
    """An empty figure of `width` by `height` inches at 110 dpi, laid out to fit its legends."""
    # Late import: matplotlib costs about half a second and only the plots need it, not every `nerloop` command.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def save_png(figure: Figure, path: Path) -> None:
    """Write `figure` to `path` as PNG, without the Software metadata."""
    figure.savefig(path, format="png", metadata={"Software": None})
