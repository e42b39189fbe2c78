"""What kind of media a file is, from its suffix or its MIME type: the one table of each.

The store, the content checks, the URL fetcher, the HTTP API's data: URLs and the renderers all
read these, so a suffix or type Jarvis accepts is accepted (or refused) everywhere alike.
"""
from __future__ import annotations

from pathlib import PurePath

MEDIA_SUFFIXES: dict[str, frozenset[str]] = {
    "image": frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}),
    "audio": frozenset({".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus"}),
    "video": frozenset({".mp4", ".webm", ".mov", ".mkv", ".avi"}),
}

# MIME types Jarvis reads, and the file suffix a file of that type gets (aliases included).
MIME_SUFFIXES: dict[str, str] = {
    "image/png": ".png", "image/apng": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg",
    "image/pjpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp", "image/bmp": ".bmp",
    "image/x-ms-bmp": ".bmp", "image/tiff": ".tiff",
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
    "audio/flac": ".flac", "audio/x-flac": ".flac", "audio/mpeg": ".mp3", "audio/mp3": ".mp3",
    "audio/ogg": ".ogg", "audio/vorbis": ".ogg", "audio/opus": ".opus", "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a", "audio/webm": ".webm",
    "video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov",
    "video/x-matroska": ".mkv", "video/x-msvideo": ".avi", "video/avi": ".avi",
}


# suffix -> "image" | "audio" | "video"
SUFFIX_TYPES: dict[str, str] = {suffix: rtype for rtype, suffixes in MEDIA_SUFFIXES.items() for suffix in suffixes}


def media_type(name: str) -> str | None:
    """'image', 'audio' or 'video' from a file name's suffix (case-insensitive); None otherwise."""
    return SUFFIX_TYPES.get(PurePath(name).suffix.lower())


def all_suffixes() -> list[str]:
    """Every media suffix Jarvis reads, sorted (for messages that list what is accepted)."""
    return sorted(SUFFIX_TYPES)
