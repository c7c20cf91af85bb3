"""What a user sees on the console: bridge's log lines (each once) and the training progress bar.

Logging. bridge logs to the ``bridge`` logger, a child of ``tensorflow``: its level follows
TensorFlow's, as tf.estimator's lines did. ``tf.compat.v1.logging.set_verbosity(INFO)`` alone shows
them through TensorFlow's handler (``INFO:bridge:loss = ...``), and a level set on ``bridge``
itself wins. Each line is shown once: when the application configured the root logger
(``logging.basicConfig``, also after importing TensorFlow), TensorFlow's handler skips bridge's
records, which reach the root logger's handlers by propagation.

Progress bar. One line on stderr, only on a terminal unless forced (``RunConfig(progress_bar=...)``).
While it is shown, the console handlers of the root and ``tensorflow`` loggers write through it:
the bar clears its line, the log line is printed, the bar is redrawn below it. Its rate and ETA
count from the first finished step, so tracing time does not distort the first estimate.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO


def _shown_by_root_instead(record: logging.LogRecord) -> bool:
    """Filter for TensorFlow's handler: False for a bridge record that the root logger's handlers show."""
    from_bridge = record.name == "bridge" or record.name.startswith("bridge.")
    return not (from_bridge and logging.getLogger().handlers)


def configure_bridge_logger() -> logging.Logger:
    """Makes ``bridge`` a child of ``tensorflow`` (its level) whose lines TensorFlow's handler prints once.

    Idempotent; called when bridge is imported and again once TensorFlow is (TensorFlow adds its
    handler while it is imported, when the root logger has none).
    """
    logger = logging.getLogger("bridge")
    tf_logger = logging.getLogger("tensorflow")
    logger.parent = tf_logger
    for handler in tf_logger.handlers:
        if _shown_by_root_instead not in handler.filters:
            handler.addFilter(_shown_by_root_instead)
    return logger


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class _ThroughBar:
    """A stream wrapper for log handlers: clears the bar before a line, redraws it after."""

    def __init__(self, bar: "ProgressBar", stream: TextIO) -> None:
        self._bar, self._stream = bar, stream

    def write(self, text: str) -> int:
        self._bar._clear()
        written = self._stream.write(text)
        if text.endswith("\n"):
            self._bar._draw()
        return written

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class ProgressBar:
    """``step 1200/5000 [=====>    ] 24% loss 0.1234 | 310 step/s ETA 00:12`` on stderr."""

    WIDTH = 24
    MIN_INTERVAL = 0.2  # seconds between redraws

    def __init__(self, enabled: bool | None, total: int | None, unit: str, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(self._stream is not None and hasattr(self._stream, "isatty") and self._stream.isatty())
        self.enabled = enabled
        self._total, self._unit = total, unit
        self._line = ""
        self._first: tuple[float, int] | None = None  # (time, count) of the first update
        self._last_draw = 0.0
        self._swapped: list[tuple[logging.StreamHandler, Any]] = []

    def update(self, current: int, loss: float | None = None, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self._first is None:
            self._first = (now, current)
            self._route_log_handlers()
        if not force and now - self._last_draw < self.MIN_INTERVAL:
            return
        self._last_draw = now
        self._line = self._render(current, loss, now)
        self._draw()

    def close(self) -> None:
        """Leaves the last bar on its own line and gives the log handlers their stream back."""
        if self._line:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()
            self._line = ""
        for handler, stream in self._swapped:
            handler.setStream(stream)
        self._swapped = []

    def _render(self, current: int, loss: float | None, now: float) -> str:
        parts = [f"{self._unit} {current}" + (f"/{self._total}" if self._total else "")]
        if self._total:
            fraction = min(1.0, max(0.0, current / self._total))
            filled = int(fraction * self.WIDTH)
            arrow = ">" if filled < self.WIDTH else ""
            parts.append(f"[{'=' * filled}{arrow}{' ' * (self.WIDTH - filled - len(arrow))}] {fraction:4.0%}")
        if loss is not None:
            parts.append(f"loss {loss:.4g}")
        start_time, start_count = self._first or (now, current)
        if now > start_time and current > start_count:
            rate = (current - start_count) / (now - start_time)
            parts.append(f"| {rate:.3g} {self._unit}/s")
            if self._total and current < self._total:
                parts.append(f"ETA {_format_seconds((self._total - current) / rate)}")
        return " ".join(parts)

    def _clear(self) -> None:
        if self._line:
            self._stream.write("\r\033[K")

    def _draw(self) -> None:
        if self._line:
            self._stream.write("\r\033[K" + self._line)
            self._stream.flush()

    def _route_log_handlers(self) -> None:
        """Console handlers writing to the bar's stream write through the bar while it is shown."""
        targets = {id(self._stream), id(sys.__stderr__)}
        for name in ("", "tensorflow"):
            for handler in logging.getLogger(name).handlers:
                if (
                    isinstance(handler, logging.StreamHandler)
                    and not isinstance(handler, logging.FileHandler)
                    and id(handler.stream) in targets
                ):
                    self._swapped.append((handler, handler.setStream(_ThroughBar(self, self._stream))))


def evaluation_progress(done_before: int, done: int, steps: int) -> list[int]:
    """The batch counts tf.estimator logged as ``Evaluation [n/steps]`` among (done_before, done].

    Every ``max(1, steps // 10)`` batches and the last one: at most ~10 lines per evaluation.
    """
    every = max(1, steps // 10)
    return [n for n in range(done_before + 1, done + 1) if n % every == 0 or n == steps]
