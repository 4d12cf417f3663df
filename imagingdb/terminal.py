"""Text from data, made safe to show on a terminal.

Descriptions, file names, metadata and the error details quoting them come
from files and databases anyone may have written. Printed raw, an escape
sequence in one can recolour or clear the screen, retitle the window, move
the cursor over earlier lines or fake a line of output; a carriage return
overwrites what came before it on the line; bidirectional overrides reorder
what follows ("Trojan source"). Every printer of imagingdb's text output
passes such values through :func:`printable`; JSON output through
:func:`printable_json`, which keeps it exact.
"""

from __future__ import annotations

import re
from typing import Iterable

#: C0 and C1 controls and DEL; the line and paragraph separators; the bidirectional
#: marks, embeddings, overrides and isolates; lone surrogates (undecodable bytes of a
#: file name, which would also make print() fail)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                     "\u2066-\u2069\ud800-\udfff]")
#: what json.dumps(ensure_ascii=False) leaves raw of those (it escapes C0 itself)
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                             "\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``value`` as text with every control character written as an escape (``\\x1b``,
    ``\\r``, ``\\u202e``), as Python's repr writes them; everything else as it is."""
    return _UNSAFE.sub(_escaped, str(value))


def printable_json(text: str) -> str:
    """JSON text (from json.dumps) with the characters it leaves raw written as ``\\uXXXX``
    escapes: the same JSON value, safe on a terminal. Only strings can hold them."""
    return _UNSAFE_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


#: marks a value cut to fit its column
ELLIPSIS = "…"


def shortened(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when anything was cut."""
    if len(text) <= width:
        return text
    return text[:max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def fitted_widths(widths: list[int], total: int, *, keep: tuple[int, ...] = (0,),
                  cut_last: Iterable[int] = (), gap: int = 2, narrowest: int = 6) -> list[int]:
    """Column widths that fit a line of ``total`` characters (``gap`` between columns):
    the widest columns narrowed first, none below ``narrowest``, those in ``cut_last`` (an
    ID, a date: cut, they say little) only once the others are as narrow as they go, those
    in ``keep`` (the ID) never. When even that does not fit, the line is as narrow as it
    can be."""
    widths = list(widths)
    excess = sum(widths) + gap * (len(widths) - 1) - total
    last = set(cut_last)
    for tier in ([i for i in range(len(widths)) if i not in keep and i not in last],
                 [i for i in range(len(widths)) if i not in keep and i in last]):
        while excess > 0:
            narrowable = [i for i in tier if widths[i] > narrowest]
            if not narrowable:
                break
            widest = max(narrowable, key=lambda i: widths[i])
            others = [widths[i] for i in narrowable if i != widest]
            # down to the next widest column at once (or by what is still in excess)
            step = min(excess, max(1, widths[widest] - max(others, default=narrowest)),
                       widths[widest] - narrowest)
            widths[widest] -= step
            excess -= step
    return widths


def human_size(size: float) -> str:
    """Bytes in decimal units, as a person reads them: 1.2 GB, 340.0 kB, 12 B."""
    if size < 1000:
        return f"{size:.0f} B"
    value = size / 1000
    for unit in ("kB", "MB", "GB", "TB"):
        if round(value, 1) < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"
