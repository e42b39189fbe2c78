"""Reading the planner's answer into tasks (jarvis.pipeline.plan_reading) and checking them
(plan_checks), pinned where a small slip changes the plan: where a task list is found in the text,
an answer cut off at the length limit, numbering, the task cap and the size cap at their exact
limits, nesting at its exact limit, arguments read under other names, the dependency repair notes,
and which error a task that cannot run keeps."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jarvis.errors import PlanError
from jarvis.pipeline.lenient_json import MAX_CHARS
from jarvis.pipeline.plan import Plan, Ref, Task
from jarvis.pipeline.plan_reading import parse_plan, plan_from_items


def item(task: str, tid: int | None = None, dep: list[int] | None = None, **args) -> dict:
    out: dict = {"task": task, "args": args}
    if tid is not None:
        out["id"] = tid
    if dep is not None:
        out["dep"] = dep
    return out


def shape(plan: Plan) -> list[dict]:
    return [t.to_dict() for t in plan.tasks]


SUMMARY = item("summarization", 0, [-1], text="A long story.")
TRANSLATE = item("translation", 1, [0], text="<GENERATED>-0")


def test_a_well_formed_plan_needs_no_repair_and_keeps_its_text():
    text = json.dumps([SUMMARY, TRANSLATE])
    plan = parse_plan(text)
    assert plan.repairs == [] and plan.raw == text
    assert shape(plan) == [{"id": 0, "task": "summarization", "dep": [-1], "args": {"text": "A long story."}},
                           {"id": 1, "task": "translation", "dep": [0], "args": {"text": "<GENERATED>-0"}}]
    assert plan.get(1) is plan.tasks[1] and plan.get(0) is plan.tasks[0] and plan.get(7) is None
    assert plan.tasks[1].args == {"text": [Ref(0)]}


def test_an_answer_cut_off_inside_a_task_keeps_only_the_complete_ones():
    whole = json.dumps([SUMMARY, TRANSLATE])
    plan = parse_plan(whole[:whole.index("<GENERATED>") + 5])
    assert shape(plan) == shape(parse_plan(json.dumps([SUMMARY])))
    assert plan.repairs == ["the plan was cut off; kept its 1 complete task(s)",
                            "the plan was not valid JSON; recovered its tasks one by one"]


def test_task_objects_are_picked_out_of_prose_and_other_objects_are_left():
    text = (f'Thoughts: {{"note": "x"}}\nFirst {json.dumps(SUMMARY)} and then {json.dumps(TRANSLATE)}.')
    plan = parse_plan(text)
    assert [t.task for t in plan.tasks] == ["summarization", "translation"]
    assert plan.repairs == ["the plan was not valid JSON; recovered its tasks one by one"]


def test_no_answer_at_all_is_said_so():
    for text in (None, "", "  \n"):
        with pytest.raises(PlanError, match="the planner returned an empty answer"):
            parse_plan(text)


def test_an_empty_list_in_prose_is_a_plan_of_no_tasks_and_an_object_without_tasks_is_none():
    assert parse_plan("No tasks are needed: []").tasks == []
    with pytest.raises(PlanError, match="holds no task list"):
        parse_plan('{"answer": "hello", "mood": "good"}')
    assert [t.task for t in parse_plan(json.dumps(SUMMARY)).tasks] == ["summarization"]


def test_ids_are_kept_below_a_billion_and_missing_or_taken_ones_numbered_above_the_highest():
    plan = plan_from_items([item("summarization", text="a"), item("summarization", 100, text="b"),
                            item("summarization", 100, text="c"), item("summarization", 10**9, text="d"),
                            item("summarization", 5, text="e")], [])
    assert [t.id for t in plan.tasks] == [0, 100, 101, 102, 5]
    assert plan.repairs == ["task 0 had no valid id; numbered it 0", "task 2 had a duplicate id; numbered it 101",
                            "task 3 had no valid id; numbered it 102"]
    assert plan.raw == ""


def test_a_written_dependency_that_matches_the_references_needs_no_note():
    plan = plan_from_items([SUMMARY, TRANSLATE, item("translation", 2, [1], text="<GENERATED>-1")], [])
    assert plan.repairs == [] and [t.dep for t in plan.tasks] == [[], [0], [1]]
    wrong = plan_from_items([SUMMARY, item("translation", 1, [-1], text="<GENERATED>-0"),
                             item("summarization", 2, [0], text="plain")], [])
    assert wrong.repairs == ["task 1: dep [-1] rebuilt from its references as [0]",
                             "task 2: dep [0] rebuilt from its references as [-1]"]


def test_the_task_cap_applies_above_its_limit_only():
    items = [item("summarization", i, text=f"t{i}") for i in range(13)]
    assert len(parse_plan(json.dumps(items[:12])).tasks) == 12 and parse_plan(json.dumps(items[:12])).repairs == []
    capped = parse_plan(json.dumps(items))
    assert [t.id for t in capped.tasks] == list(range(12))
    assert capped.repairs == ["the plan had 13 tasks; kept the first 12 (inference.max_tasks)"]
    assert plan_from_items(items, []).repairs == ["the plan had 13 tasks; kept the first 12 (inference.max_tasks)"]
    assert len(parse_plan(json.dumps(items[:3]), max_tasks=2).tasks) == 2


def test_the_size_cap_applies_above_its_limit_only():
    text = json.dumps([SUMMARY])
    exact = parse_plan(text + " " * (MAX_CHARS - len(text)))
    assert exact.repairs == []
    items = [item("summarization", i, text="x" * 2000) for i in range(120)]
    long = json.dumps(items)
    assert len(long) > MAX_CHARS
    cut = parse_plan(long, max_tasks=200)
    assert cut.repairs[0] == f"the planner's answer was longer than {MAX_CHARS} characters; read only its start"
    assert cut.repairs[1].startswith("the plan was cut off") and len(cut.raw) == MAX_CHARS
    with pytest.raises(PlanError, match=f"longer than {MAX_CHARS} characters and only its start was read"):
        parse_plan("x" * (MAX_CHARS + 1))


def nested(levels: int):
    value: object = "deep"
    for _ in range(levels):
        value = [value]
    return value


def test_argument_values_nest_twelve_lists_deep_and_no_deeper():
    ok = plan_from_items([item("summarization", 0, text=nested(12))], [])
    assert ok.tasks[0].args == {"text": ["deep"]}
    with pytest.raises(PlanError) as refused:
        plan_from_items([item("summarization", 0, text=nested(13))], [])
    assert str(refused.value) == ("none of the plan's 1 item(s) could be read: "
                                  "ignored plan item 0: its values are nested too deeply to read")


def test_unreadable_items_are_skipped_not_the_ones_after_them_and_take_no_id():
    too_deep = item("Summarization", 0, text=nested(13), extra="x")     # would be noted twice if it were read
    plan = plan_from_items(["junk", too_deep, SUMMARY, 7, TRANSLATE], [])
    assert [(t.id, t.task, t.dep) for t in plan.tasks] == [(0, "summarization", []), (1, "translation", [0])]
    assert plan.repairs == ["ignored plan item 0: not an object",
                            "ignored plan item 1: its values are nested too deeply to read",
                            "ignored plan item 3: not an object"]
    with pytest.raises(PlanError) as refused:
        plan_from_items(["a", "b", "c", "d"], [])
    assert str(refused.value) == ("none of the plan's 4 item(s) could be read: ignored plan item 1: not an object; "
                                  "ignored plan item 2: not an object; ignored plan item 3: not an object")


def test_an_object_argument_is_kept_as_its_json_unescaped():
    plan = plan_from_items([item("summarization", 0, text={"note": "café"})], [])
    assert plan.tasks[0].args == {"text": ['{"note": "café"}']}


@pytest.mark.parametrize("key", ["src", "source", "target", "file", "path", "url", "value"])
def test_a_generic_argument_name_is_read_as_text_for_a_task_of_several_input_types(key):
    plan = plan_from_items([{"task": "visual-question-answering", "id": 0,
                             "args": {"image": "cat.png", key: "What is it?"}}], [])
    task = plan.tasks[0]
    assert task.error is None and task.args == {"image": ["cat.png"], "text": ["What is it?"]}
    assert plan.repairs == [f"task 0: read argument {key!r} as text"]


def test_an_unknown_argument_of_a_task_of_several_input_types_is_ignored_and_said():
    plan = plan_from_items([{"task": "visual-question-answering", "id": 0,
                             "args": {"image": "cat.png", "question": "What?", "language": "en"}}], [])
    assert plan.tasks[0].args == {"image": ["cat.png"], "text": ["What?"]}
    assert plan.repairs == ["task 0: ignored unknown argument 'language'"]


def test_a_second_slot_alone_is_kept_and_the_missing_first_one_reported():
    plan = plan_from_items([{"task": "question-answering", "id": 0, "args": {"context": "Paris is in France."}}], [])
    task = plan.tasks[0]
    assert task.args == {"text": ["Paris is in France."]}
    assert task.error == "question-answering needs 2 text input(s) (question, context) and the plan gave 1"


def test_inputs_are_checked_in_their_order_every_run():
    for seed in range(6):     # the order of a set of strings changes with the hash seed
        result = subprocess.run([sys.executable, "-c", (
            "from jarvis.pipeline.plan_reading import plan_from_items; "
            "print(plan_from_items([{'task': 'visual-question-answering', 'id': 0, 'args': {}}], []).tasks[0].error)")],
            env={**os.environ, "PYTHONHASHSEED": str(seed)}, capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "visual-question-answering needs 1 image input(s) (image) and the plan gave 0"


def test_a_missing_input_of_one_type_is_found_whichever_type_is_checked_first():
    for args, error in [({"image": "cat.png"}, "visual-question-answering needs 1 text input(s) (question) "
                                               "and the plan gave 0"),
                        ({"text": "What?"}, "visual-question-answering needs 1 image input(s) (image) "
                                            "and the plan gave 0")]:
        plan = plan_from_items([{"task": "visual-question-answering", "id": 0, "args": args}], [])
        assert plan.tasks[0].error == error
    attached = plan_from_items([{"task": "visual-question-answering", "id": 0, "args": {}}], [], files=["cat.png"])
    assert attached.tasks[0].args == {"image": ["cat.png"]}
    assert attached.tasks[0].error == ("visual-question-answering needs 1 text input(s) (question) "
                                       "and the plan gave 0")


def test_a_task_keeps_its_first_error():
    plan = plan_from_items([{"task": "visual-question-answering", "id": 0, "args": {"image": "<GENERATED>-0"}}], [])
    assert plan.tasks[0].error == "task 0 uses its own output"


def test_a_task_type_is_read_whatever_its_spelling_and_an_unknown_one_is_said_so():
    plan = plan_from_items([item("Summarization", 0, text="a"), item("text-to-3d", 1, text="b"),
                            item("  ", 2, text="c"), {"id": 3, "args": {"text": "d"}}], [])
    assert [t.task for t in plan.tasks] == ["summarization", "text-to-3d", "unknown", "unknown"]
    assert plan.repairs[0] == "task 0: read task type 'Summarization' as 'summarization'"
    assert plan.tasks[1].error == ("unknown task type 'text-to-3d' (known types are listed in the planning prompt)")
    assert plan.tasks[2].error == plan.tasks[3].error == "the plan gave this task no type"


def test_a_task_is_written_back_in_hugginggpts_format_with_its_error():
    task = Task(2, "translation", [], {"text": [Ref(0), "and more"]}, error="cannot run")
    assert task.to_dict() == {"id": 2, "task": "translation", "dep": [-1], "args": {"text": ["<GENERATED>-0", "and more"]},
                              "error": "cannot run"}
    assert Task(3, "summarization", [1], {"text": ["a"]}).to_dict() == {
        "id": 3, "task": "summarization", "dep": [1], "args": {"text": "a"}}


@pytest.mark.parametrize("cut", ['"dep": [0]', '"dep": [0], "args": {"text": "<GENERATED>-0"}'])
def test_a_plan_cut_off_just_after_a_nested_closer_says_it_was_cut_off(cut):
    """The last task stops right after its `]` or `}`: it is left out, and the repairs say the plan was cut off."""
    text = '[{"task": "summarization", "id": 0, "dep": [-1], "args": {"text": "hi"}}, ' \
           '{"task": "translation", "id": 1, ' + cut
    plan = parse_plan(text)
    assert [t.task for t in plan.tasks] == ["summarization"]
    assert "the plan was cut off; kept its 1 complete task(s)" in plan.repairs
