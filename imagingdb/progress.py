"""A light progress bar on stderr (only on a terminal) and a one-line summary at the end."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Optional, TextIO

from .terminal import human_size, printable


class Progress:
    """Progress callbacks; the CLI passes a terminal bar, the API defaults to silence."""

    def start(self, label: str, total_frames: int, total_bytes: int, unit: str = "frame") -> None:
        """A new piece of work begins: ``total_frames`` frames (or objects of ``unit``, e.g.
        "file", "object"), about ``total_bytes`` bytes (0: unknown)."""

    def advance(self, frames: int, nbytes: int) -> None:
        """``frames`` more frames (``nbytes`` bytes of pixels) are done."""

    def finish(self, ok: bool = True) -> None:
        """The piece of work is over: done, or failed (``ok=False``, the error says why)."""

    def note(self, message: str) -> None:
        """A line for the person watching (what was found, a warning), between pieces of work."""


def _duration(seconds: float) -> str:
    """3 s, 4 min 05 s, 2 h 03 min."""
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TerminalProgress(Progress):
    """Frames/s and MB/s on one redrawn stderr line; silent when stderr is not a terminal.
    ``summary=False``: no line at the end either (the command prints its own summary)."""

    def __init__(self, verb: str, done_verb: str, stream: Optional[TextIO] = None,
                 bar: Optional[bool] = None, summary: bool = True):
        self.verb = verb
        self.done_verb = done_verb
        self.summary = summary
        self.stream = stream = stream or sys.stderr
        self.bar = stream.isatty() if bar is None else bar
        self.label = ""
        self.total_frames = self.total_bytes = 0
        self.done_frames = self.nbytes = 0
        self.started = self.last_draw = 0.0
        self.unit = "frame"

    def start(self, label: str, total_frames: int, total_bytes: int, unit: str = "frame") -> None:
        # shown on every redraw: escaped once (it may quote data)
        self.label = printable(label)
        self.unit = unit
        self.total_frames, self.total_bytes = total_frames, total_bytes
        self.done_frames = self.nbytes = 0
        self.started = time.monotonic()
        self.last_draw = 0.0

    def advance(self, frames: int, nbytes: int) -> None:
        self.done_frames += frames
        self.nbytes += nbytes
        now = time.monotonic()
        if self.bar and now - self.last_draw > 0.1:
            self.last_draw = now
            self._draw(now)

    def _rates(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        rate = f"{self.done_frames / elapsed:.0f} {self.unit}s/s"
        if self.nbytes:
            rate += f", {human_size(self.nbytes / elapsed)}/s"
        return rate

    def _fraction(self) -> float:
        """How much of the work is done: by bytes when their total is known, else by count."""
        if self.total_bytes:
            return min(1.0, self.nbytes / self.total_bytes)
        return min(1.0, self.done_frames / max(self.total_frames, 1))

    def _draw(self, now: float) -> None:
        """``Uploading ID [####------] 12/24 50% 1.2/2.5 MB, 3 s left (120 frames/s, ...)``,
        cut to the terminal's width (a wrapped line would not be redrawn in place)."""
        total = max(self.total_frames, 1)
        fraction = self._fraction()
        width = 20
        bar = "#" * int(width * fraction) + "-" * (width - int(width * fraction))
        head = f"{self.verb} {self.label} [{bar}] {self.done_frames}/{total} {fraction:.0%}"
        elapsed = now - self.started
        left = (f", {_duration(elapsed * (1 - fraction) / fraction)} left"
                if 0 < fraction < 1 and elapsed > 0.5 else "")
        sizes = f" {human_size(self.nbytes)} of {human_size(self.total_bytes)}" if self.total_bytes else ""
        rates = f" ({self._rates(now)})"
        columns = shutil.get_terminal_size((100, 24)).columns
        # the least useful part goes first when the line would not fit
        for line in (head + sizes + left + rates, head + sizes + left, head + left, head):
            if len(line) < columns:
                break
        else:
            line = line[:max(columns - 2, 10)] + "…"
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar (the next advance draws it again), so that a line can be printed on
        stdout, which shares the terminal."""
        if self.bar and self.last_draw:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.last_draw = 0.0

    def note(self, message: str) -> None:
        """Printed whether or not stderr is a terminal: it is part of the command's output."""
        self.stream.write(("\r\x1b[K" if self.bar else "") + printable(message) + "\n")
        self.stream.flush()

    def finish(self, ok: bool = True) -> None:
        now = time.monotonic()
        if self.bar:
            self.stream.write("\r\x1b[K")
        if not ok or not self.summary:
            self.stream.flush()
            return
        elapsed = now - self.started
        size = f", {human_size(self.nbytes)}" if self.nbytes else ""
        count = f"{self.done_frames} {self.unit}{'s' if self.done_frames != 1 else ''}"
        self.stream.write(f"{self.done_verb} {self.label}: {count}{size} in "
                          f"{elapsed:.1f} s ({self._rates(now)})\n")
        self.stream.flush()
