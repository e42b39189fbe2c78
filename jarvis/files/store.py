"""A session's resource store: one directory holding its uploads and generated files.

The planner knows each resource by its file name. A task may read only files inside this
directory (uploads are copied in first) or public http(s) URLs, fetched into it. Uploads get safe
names (no path parts, ASCII, at most 100 characters, the suffix kept) and files a browser would run
(SVG, HTML, XML, scripts) are refused: served back from the app's origin, they could script it.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import threading
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from jarvis.errors import ResourceError
from jarvis.files.media_types import media_type
from jarvis.files.url_fetch import fetch_to_store


@dataclass
class Resource:
    """One file of a session, as the planner knows it."""
    name: str        # what the planner calls it
    path: Path
    type: str        # image | audio | video | text
    origin: str      # "upload" | "generated" | "url"


NAME_CHARS = 100
# What a browser runs when served from the app's origin (or reads as markup); never stored.
ACTIVE_SUFFIXES = frozenset({".svg", ".svgz", ".html", ".htm", ".xhtml", ".xht", ".shtml", ".xml", ".xsl",
                             ".xslt", ".js", ".mjs", ".mht", ".mhtml", ".swf"})
# What a browser sniffing a file's first 1445 bytes (WHATWG MIME Sniffing, "resource header") would take
# for HTML or XML: after a BOM and whitespace, one of these tags ended by a space or ">" (or "/" or another
# whitespace, stricter than the standard), or "<!--", "<?xml".
SNIFFED_BYTES = 1445
_MARKUP = re.compile(rb"^(?:\xef\xbb\xbf)?[\t\n\x0c\r ]*+<(?:\?xml|!--|(?:!doctype html|html|head|script|iframe|"
                     rb"h1|div|font|table|a|style|title|b|body|br|p|svg)[\t\n\x0c\r />])", re.I)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


def _safe_name(name: str) -> str:
    """The name without path parts, in ASCII letters, digits, '.', '_' and '-' (accents dropped,
    anything else '_'), at most NAME_CHARS long, keeping its suffix (which decides its media type)."""
    base = PurePosixPath(str(name).replace("\\", "/")).name
    base = "".join(c for c in unicodedata.normalize("NFKD", base) if not unicodedata.combining(c))
    stem, _, suffix = base.rpartition(".")
    if not stem.strip(".") or not re.fullmatch(r"[A-Za-z0-9]{1,10}", suffix):   # no suffix, or ".hidden"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:NAME_CHARS] or "file"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).lstrip("._") or "file"
    return f"{stem[:NAME_CHARS - len(suffix) - 1]}.{suffix}"


def _refuse_active(src: Path, name: str) -> None:
    with open(src, "rb") as f:
        head = f.read(SNIFFED_BYTES)
    if Path(name).suffix.lower() in ACTIVE_SUFFIXES or _MARKUP.match(head):
        raise ResourceError(f"cannot attach {name}: SVG, HTML and other markup can carry scripts. "
                            "Attach images as PNG, JPEG or WEBP, or audio or video files")


class ResourceStore:
    """The files one session may use. URL fetches take their caps (config.files) from here;
    `allow_private` is for tests only, as fetch_to_store's: loopback URLs (a local test server) pass."""

    def __init__(self, root: str | Path | None = None, *, max_download_mb: float = 25.0,
                 fetch_timeout: float = 20.0, max_image_megapixels: float = 40.0, allow_private: bool = False):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="jarvis-session-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self._lock = threading.Lock()
        self._items: dict[str, Resource] = {}
        self._fetched: dict[str, Path] = {}      # URL -> file it was fetched into (one download per URL)
        self.max_download_bytes = int(max_download_mb * 2**20)
        self.fetch_timeout = float(fetch_timeout)
        self.max_image_megapixels = float(max_image_megapixels)
        self.allow_private = allow_private

    # -- adding ---------------------------------------------------------
    def _unique(self, name: str) -> Path:
        name = _safe_name(name)
        stem, suffix = Path(name).stem, Path(name).suffix
        with self._lock:
            candidate = self.root / name
            n = 1
            while candidate.exists() or candidate.name in self._items:
                tag = f"-{n}{suffix}"      # the stem gives way, so a repeated long name keeps the cap
                candidate = self.root / f"{stem[:NAME_CHARS - len(tag)]}{tag}"
                n += 1
            candidate.touch()
            return candidate

    def add_upload(self, src: str | Path, name: str | None = None) -> Resource:
        """Copy a user's file in; returns the resource, named as the planner will see it."""
        src = Path(src)
        if not src.is_file():
            raise ResourceError(f"attached file not found: {src.name}")
        _refuse_active(src, _safe_name(name or src.name))
        dest = self._unique(name or src.name)
        shutil.copyfile(src, dest)
        return self._register(dest, "upload")

    def new_path(self, stem: str, suffix: str) -> Path:
        """A fresh, unique path for a generated file (e.g. new_path('image', '.png'))."""
        return self._unique(f"{stem}-{uuid.uuid4().hex[:8]}{suffix}")

    def register_generated(self, path: Path) -> Resource:
        """Record a file a task wrote into this store."""
        return self._register(Path(path), "generated")

    def register_fetched(self, path: Path, url: str) -> Resource:
        """Record a file downloaded from `url`, so a second use of the URL reuses it."""
        res = self._register(Path(path), "url")
        with self._lock:
            self._fetched[url] = res.path
        return res

    def restore(self, path: Path, origin: str) -> Resource:
        """Record a file already in this store under its origin (a saved conversation reopened)."""
        path = Path(path)
        if not path.resolve().is_relative_to(self.root) or not path.is_file():
            raise ResourceError(f"{path.name} is not a file of this session's folder")
        return self._register(path, origin)

    def _fetch(self, url: str, progress: Callable[[str], None] | None,
               cancel: threading.Event | None) -> Path:
        with self._lock:
            cached = self._fetched.get(url)
        if cached is not None and cached.is_file():
            return cached
        return fetch_to_store(url, self, max_bytes=self.max_download_bytes, timeout=self.fetch_timeout,
                              max_megapixels=self.max_image_megapixels, allow_private=self.allow_private,
                              progress=progress, cancel=cancel)

    def _register(self, path: Path, origin: str) -> Resource:
        res = Resource(path.name, path, media_type(path.name) or "text", origin)
        with self._lock:
            self._items[res.name] = res
        return res

    # -- reading --------------------------------------------------------
    def list(self) -> list[Resource]:
        """Every file of the session, in the order it arrived."""
        with self._lock:
            return list(self._items.values())

    def resolve(self, value: str, *, progress: Callable[[str], None] | None = None,
                cancel: threading.Event | None = None) -> Path:
        """Turn a plan's reference (a name, a path inside the store, or a URL) into a file here. A URL's
        fetch reports to `progress` and stops when `cancel` is set (see fetch_to_store)."""
        value = str(value).strip()
        low = value.lower()
        if low.startswith(("http://", "https://")):
            return self._fetch(value, progress, cancel)
        if "\x00" in value:
            raise ResourceError("a file name with a NUL character cannot be used")
        if "://" in value or low.startswith(("file:", "data:")):
            raise ResourceError(f"only http(s) URLs and this session's files can be used, not {value[:60]!r}")
        candidate = Path(value)
        if candidate.is_absolute():
            try:
                resolved = candidate.resolve()
            except (OSError, ValueError, RuntimeError):
                resolved = None
            if resolved and resolved.is_relative_to(self.root) and resolved.is_file():
                return resolved
            # HuggingGPT plans write "/e.jpg" for an uploaded e.jpg: fall back to the name
        name = candidate.name
        with self._lock:
            item = self._items.get(name) or self._items.get(_safe_name(name))
        if item and item.path.is_file():
            return item.path
        raise ResourceError(
            f"{value!r} is not a file of this session: attach it first, or name one of: "
            + (", ".join(sorted(self._items)) or "(no files yet)")
        )

    def find(self, ref: str) -> Path | None:
        """The session file `ref` names (a name, or a path inside the store), or None. Unlike
        resolve it never fetches: an address (https:, data:, //host) is not a file of this session."""
        ref = str(ref).strip()
        if not ref or _SCHEME.match(ref):
            return None
        try:
            return self.resolve(ref)
        except ResourceError:
            return None

    def cleanup(self) -> None:
        """Delete the directory and forget its files."""
        shutil.rmtree(self.root, ignore_errors=True)
        with self._lock:
            self._items.clear()
            self._fetched.clear()
