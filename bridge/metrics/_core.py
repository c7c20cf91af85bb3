"""The one place that imports the compiled extension ``bridge._metrics_core``."""

from __future__ import annotations

try:
    from bridge import _metrics_core as core
except ImportError as exc:  # pragma: no cover - only without a build
    exc.msg = (
        f"{exc.msg}\nbridge.metrics needs its compiled extension bridge._metrics_core. "
        "Build it with `pip install .` (or `pip install --no-build-isolation -e .` in a checkout)."
    )
    raise

__all__ = ["core", "get_num_threads", "set_num_threads"]


def set_num_threads(n: int) -> None:
    """Sets how many threads large batches are split across (1 turns threading off)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"Argument `n` must be a positive integer. Received: n={n!r}")
    core.set_num_threads(n)


def get_num_threads() -> int:
    """Returns how many threads large batches may be split across."""
    return int(core.get_num_threads())
