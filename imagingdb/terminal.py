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
