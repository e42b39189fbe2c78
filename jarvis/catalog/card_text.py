"""Model card text: a card's markdown reduced to a short plain-text description for the catalog and
the selection prompt (front matter, code, tables, links and badges dropped; the first prose paragraph kept).
"""
from __future__ import annotations

import html
import re

from jarvis.shorten import shorten

DESCRIPTION_CHARS = 300

_FRONT_MATTER = re.compile(r"\A\s*---\s*\n.*?\n---\s*(\n|\Z)", re.S)
_CODE_BLOCK = re.compile(r"(```|~~~).*?(\1|\Z)", re.S)
_HTML_COMMENT = re.compile(r"<!--.*?(-->|\Z)", re.S)
_DROP_ELEMENTS = re.compile(r"<(script|style|details|table)\b.*?</\1\s*>", re.S | re.I)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)|!\[[^\]]*\]\[[^\]]*\]")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)|\[([^\]]+)\]\[[^\]]*\]")
_REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$", re.M)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_URL = re.compile(r"<?https?://\S+>?")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(\S(?:.*?\S)?)\1")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_PLACEHOLDER = re.compile(r"\[?more information needed\]?", re.I)
_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff]")
_LABEL = re.compile(r"^(model (description|summary|details)|description|summary|overview)\s*:\s*", re.I)


def summarize_card(body: str, limit: int = DESCRIPTION_CHARS) -> str:
    """A model card's markdown body reduced to its first prose paragraph, plain text, <= limit chars."""
    text = _FRONT_MATTER.sub("", _INVISIBLE.sub("", body or ""))
    for pattern in (_CODE_BLOCK, _HTML_COMMENT, _DROP_ELEMENTS, _IMAGE, _REF_DEF):
        text = pattern.sub("\n", text)
    text = _LINK.sub(lambda m: m.group(1) or m.group(2) or "", text)
    text = html.unescape(_URL.sub("", _TAG.sub(" ", text)))
    prose: list[str] = []
    listed: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.strip().splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith(("#", "|")) and not re.fullmatch(r"[-=*_:| ]+", ln)]
        if not lines:
            continue
        is_list = all(_LIST_MARK.match(ln) for ln in lines)
        words = " ".join(_LIST_MARK.sub("", ln.lstrip("> ").strip()) for ln in lines)
        words = _PLACEHOLDER.sub("", _EMPHASIS.sub(r"\2", words))
        words = _LABEL.sub("", " ".join(words.split()).strip(" -:"))
        if len(words.split()) < 4 or not re.search(r"[A-Za-z\u00c0-\uffff]{2}", words):
            continue
        (listed if is_list else prose).append(words)
    parts = prose or listed
    summary = ""
    for part in parts:  # one paragraph; a very short lead sentence borrows the next paragraph
        summary = f"{summary} {part}".strip()
        if len(summary) >= 80:
            break
    return shorten(summary, limit)
