"""find_objects reads a plan's text in one pass (review finding: it scanned the text twice, once for
the balanced objects and again for whether one was left open)."""
from __future__ import annotations

import json
from collections.abc import Iterator

from jarvis.pipeline.lenient_json import find_objects


class CountedText(str):
    """A text that counts how many times it is read character by character."""
    passes = 0

    def __iter__(self) -> Iterator[str]:
        CountedText.passes += 1
        return super().__iter__()


def plan_text(tasks: int) -> str:
    return json.dumps([{"task": "image-to-text", "id": n, "dep": [n - 1], "args": {"image": f"<GENERATED>-{n - 1}"}}
                       for n in range(tasks)])


def test_a_whole_plan_is_read_in_one_pass():
    text = CountedText(plan_text(30))
    CountedText.passes = 0
    objects, truncated = find_objects(text, ("task",))
    assert [o["id"] for o in objects] == list(range(30)) and truncated is False
    assert CountedText.passes == 1


def test_a_plan_cut_off_is_read_in_one_pass_and_still_reads_as_truncated():
    whole = plan_text(5)
    for cut, left_open in ((whole[:-3], True), (whole[:whole.rindex("}")], True),
                           (whole + "\n", False), ('[{"task": "a", "note": "it\'s \\"x', True),
                           ('[{"task": "a"}] {"b": "c', True), ('[{"task": "a"}] "', False)):
        text = CountedText(cut)
        CountedText.passes = 0
        assert find_objects(text, ("task",))[1] is left_open, cut
        assert CountedText.passes == 1, cut
