"""A light progress bar on stderr (only on a terminal) and a one-line summary at the end."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from .terminal import printable


class Progress:
    """Progress callbacks; the CLI passes a terminal bar, the API defaults to silence."""

    def start(self, label: str, total_frames: int, total_bytes: int) -> None:
        """A new piece of work begins: ``total_frames`` frames, about ``total_bytes`` bytes."""

    def advance(self, frames: int, nbytes: int) -> None:
        """``frames`` more frames (``nbytes`` bytes of pixels) are done."""

    def finish(self, ok: bool = True) -> None:
        """The piece of work is over: done, or failed (``ok=False``, the error says why)."""

    def note(self, message: str) -> None:
        """A line for the person watching (what was found, a warning), between pieces of work."""


def _size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"


class TerminalProgress(Progress):
    """Frames/s and MB/s on one redrawn stderr line; silent when stderr is not a terminal."""

    def __init__(self, verb: str, done_verb: str, stream: Optional[TextIO] = None,
                 bar: Optional[bool] = None):
        self.verb = verb
        self.done_verb = done_verb
        self.stream = stream = stream or sys.stderr
        self.bar = stream.isatty() if bar is None else bar
        self.label = ""
        self.total_frames = self.total_bytes = 0
        self.done_frames = self.nbytes = 0
        self.started = self.last_draw = 0.0

    def start(self, label: str, total_frames: int, total_bytes: int) -> None:
        # shown on every redraw: escaped once (it may quote data)
        self.label = printable(label)
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
        rate = f"{self.done_frames / elapsed:.0f} frames/s"
        if self.nbytes:
            rate += f", {_size(self.nbytes / elapsed)}/s"
        return rate

    def _draw(self, now: float) -> None:
        total = max(self.total_frames, 1)
        width = 24
        filled = int(width * self.done_frames / total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.verb} {self.label} [{bar}] {self.done_frames}/{total} "
                          f"({self._rates(now)})\x1b[K")
        self.stream.flush()

    def note(self, message: str) -> None:
        """Printed whether or not stderr is a terminal: it is part of the command's output."""
        self.stream.write(("\r\x1b[K" if self.bar else "") + printable(message) + "\n")
        self.stream.flush()

    def finish(self, ok: bool = True) -> None:
        now = time.monotonic()
        if self.bar:
            self.stream.write("\r\x1b[K")
        if not ok:
            self.stream.flush()
            return
        elapsed = now - self.started
        size = f", {_size(self.nbytes)}" if self.nbytes else ""
        self.stream.write(f"{self.done_verb} {self.label}: {self.done_frames} frame(s){size} in "
                          f"{elapsed:.1f} s ({self._rates(now)})\n")
        self.stream.flush()
