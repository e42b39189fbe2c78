"""An LLM note carries its kind from the code that gives it (review finding: Usage.note, and the CLI
after it, decided which notes collapse by the text prefix "downloading")."""
from __future__ import annotations

import io

from jarvis.events import LLMProgress
from jarvis.frontends.cli import Progress
from jarvis.llm.backend import Usage


def test_progress_notes_replace_the_previous_one_of_their_source_and_milestones_stay():
    usage = Usage()
    usage.note("loading a/b on cpu, downloading it first (one time)", "milestone", source="a/b")
    usage.note("fetching a/b: 1 MB of 9 MB (11%)", "progress", source="a/b")
    usage.note("fetching c/d: 2 MB of 5 MB (40%)", "progress", source="c/d")
    usage.note("fetching a/b: 5 MB of 9 MB (55%)", "progress", source="a/b")
    usage.note("downloading done: a/b", "milestone", source="a/b")
    usage.note("downloading a/b again", "milestone", source="a/b")
    notes = usage.take_notes()
    assert [(n.text, n.kind, n.source) for n in notes] == [
        ("loading a/b on cpu, downloading it first (one time)", "milestone", "a/b"),
        ("fetching c/d: 2 MB of 5 MB (40%)", "progress", "c/d"),
        ("fetching a/b: 5 MB of 9 MB (55%)", "progress", "a/b"),
        ("downloading done: a/b", "milestone", "a/b"),
        ("downloading a/b again", "milestone", "a/b")]
    assert usage.take_notes() == []


def test_a_note_given_without_a_kind_is_a_milestone():
    usage = Usage()
    usage.note("downloading x: 1 MB of 9 MB (11%)")
    usage.note("downloading x: 5 MB of 9 MB (55%)")
    assert [(n.text, n.kind) for n in usage.take_notes()] == [("downloading x: 1 MB of 9 MB (11%)", "milestone"),
                                                              ("downloading x: 5 MB of 9 MB (55%)", "milestone")]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_notes_rewrite_the_status_line_and_milestones_print_a_line():
    out = Terminal()
    progress = Progress(out)
    progress(LLMProgress("plan", 0, 1.0, note="fetching a/b: 1 MB of 9 MB (11%)", note_kind="progress"))
    assert out.getvalue() == "\r\033[Kllm: fetching a/b: 1 MB of 9 MB (11%)"
    progress(LLMProgress("plan", 0, 2.0, note="downloading done: a/b", note_kind="milestone"))
    assert out.getvalue().endswith("\r\033[Kllm: downloading done: a/b\n")
