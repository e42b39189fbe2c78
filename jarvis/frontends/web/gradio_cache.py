"""Gradio's own copies of a session's files. Gradio serves every file it shows from its cache
(GRADIO_TEMP_DIR): uploads land there, and each file the chat shows is copied there, named by a
hash of its content. Deleting a session's directory leaves those copies downloadable, so "Clear
chat and files" and session expiry delete them too (copies Gradio keeps for the examples stay).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import processing_utils
from gradio.utils import abspath, get_upload_folder, is_in_or_equal
from gradio_client.utils import strip_invalid_filename_characters


def shown_paths(messages: Iterable[dict[str, Any]]) -> list[str]:
    """The files a list of chat messages shows (media messages: content {"path": ...})."""
    return [str(m["content"]["path"]) for m in messages
            if isinstance(m.get("content"), dict) and m["content"].get("path")]


def in_cache(messages: Iterable[dict[str, Any]], copies: dict[str, str]) -> list[dict[str, Any]]:
    """The messages with each file outside Gradio's cache (a saved conversation's) replaced by its
    copy in the cache, made once and remembered in `copies` (path -> copy). Gradio then serves the
    copy like any file it shows, and a conversation's own folder is never reachable by a link."""
    cache = get_upload_folder()
    out = []
    for m in messages:
        content = m.get("content")
        path = content.get("path") if isinstance(content, dict) else None
        if path and isinstance(content, dict) and not is_in_or_equal(str(abspath(path)), cache):
            if path not in copies:
                try:
                    copies[path] = processing_utils.save_file_to_cache(path, cache)
                except OSError:          # gone: Gradio says so in the chat
                    out.append(m)
                    continue
            m = {**m, "content": {**content, "path": copies[path]}}
        out.append(m)
    return out


def copies_of(paths: Iterable[str]) -> set[str]:
    """Where Gradio keeps (or will keep) its copy of each file: the file itself when it is in the
    cache already (an upload), else the content-addressed copy Gradio makes when showing it."""
    cache = get_upload_folder()
    copies: set[str] = set()
    for path in paths:
        p = abspath(path)
        if is_in_or_equal(str(p), cache):
            copies.add(str(p))
        else:
            try:
                digest = processing_utils.hash_file(p)
            except OSError:      # gone already: its copy, if any, waits for Gradio's own clean-up
                continue
            copies.add(str(abspath(Path(cache) / digest / strip_invalid_filename_characters(p.name))))
    return copies


def delete_copies(blocks: gr.Blocks, copies: set[str]) -> None:
    """Delete these cached copies and stop Gradio from serving them; examples' copies stay."""
    keep: set[str] = set()
    for block in blocks.blocks.values():
        keep.update(getattr(block, "keep_in_cache", set()))
    gone = {c for c in copies if c not in keep}
    for temp_set in blocks.temp_file_sets:
        temp_set.difference_update(gone)
    for copy in gone:
        path = Path(copy)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()      # the hash directory, when nothing else is in it
        except OSError:
            pass
