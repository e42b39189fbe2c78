"""The one text shortener: long values shown in messages, prompts, the UI and the API's steps are
cut the same way everywhere (one line, at a word boundary when one is near, with an ellipsis)."""
from __future__ import annotations

ELLIPSIS = "..."


def shorten(text: object, limit: int) -> str:
    """`text` on one line (whitespace folded); cut to at most `limit` characters, ending in '...',
    at a word boundary when one lies in the second half."""
    line = " ".join(str(text).split())
    if len(line) <= limit:
        return line
    cut = line[:max(0, limit - len(ELLIPSIS))]
    if " " in cut[limit // 2:]:
        cut = cut[:cut.rfind(" ")]
    return cut.rstrip(" ,;:.-") + ELLIPSIS
