"""The plan while its stream is read, and the rule that joins what started early to the whole plan.

A task is *planned* once its JSON object has closed and every task it uses is already written: the
plan so far, validated as a whole plan would be (`plan_from_items` on the objects read), holds it
without error. Nothing written later can change such a task: ids are numbered in order, and its
validation reads only itself, the tasks it uses and the attached files. The controller starts a
planned task at once when its model is settled (no model to choose, or one candidate).

The whole plan is still parsed and validated on its own when the stream ends (repairs, cycles).
Where it reads a started task differently (only odd answers do: a list whose items are not all
task objects, say), the rule is: **a task that started runs as it started and stays in the plan
as it ran**; the whole plan's tasks that use its output are not run (they would get an output of a
kind they may not take), and each case is a repair in the record.
"""
from __future__ import annotations

from typing import Any

from jarvis.errors import PlanError
from jarvis.pipeline.lenient_json import closed_list, find_objects, strip_fences
from jarvis.pipeline.plan import Plan, Task
from jarvis.pipeline.plan_reading import TASK_KEYS, parse_plan, plan_from_items

LIVE_CHARS = 50_000   # a plan is a few KB: past this, each new chunk is not searched again (it is read whole at the end)


def list_closed(text: str) -> bool:
    """Whether the planner's answer so far holds its whole list (lenient_json.closed_list), while the
    text is short enough to search again at every chunk."""
    return len(text) <= LIVE_CHARS and closed_list(text)


class LivePlan:
    """`feed(delta)` the plan's text as it comes; it returns the tasks newly planned."""

    def __init__(self, max_tasks: int, files: list[str]):
        self.max_tasks = max_tasks
        self.files = files
        self.text = ""
        self.planned: dict[int, Task] = {}
        self._objects: list[dict[str, Any]] = []
        self._steady = True     # False once what was read reads differently: wait for the whole plan

    @property
    def objects(self) -> int:
        """How many complete task objects the text holds so far."""
        return len(self._objects)

    def feed(self, delta: str) -> list[Task]:
        self.text += delta
        if "}" not in delta or not self._steady or len(self.text) > LIVE_CHARS:
            return []
        objects = find_objects(strip_fences(self.text), TASK_KEYS)[0]
        if objects[:len(self._objects)] != self._objects:
            self._steady = False
            return []
        if len(objects) == len(self._objects):
            return []
        self._objects = objects
        try:
            so_far = plan_from_items(list(objects), [], max_tasks=self.max_tasks, files=self.files)
        except PlanError:
            return []
        new = [t for t in so_far.tasks if t.id not in self.planned and not t.error]
        for task in new:
            self.planned[task.id] = task
        return new

    def whole(self, broke_off: str | None = None) -> Plan:
        """The whole plan from all the text read (PlanError when it holds none). `broke_off`: why the
        stream ended early, when it did: the plan keeps the tasks it had written."""
        plan = parse_plan(self.text, max_tasks=self.max_tasks, files=self.files)
        if broke_off:
            plan.repairs.insert(0, f"the plan's stream broke off ({broke_off}); kept the tasks it had written")
        return plan


def _differs(ran: Task, planned: Task) -> str | None:
    """How the whole plan reads a started task differently, or None when it reads it the same."""
    if planned.error:
        return f"it says: {planned.error}"
    if (ran.task, ran.dep) != (planned.task, planned.dep):
        return f"as {planned.task} after {planned.dep or [-1]}"
    if ran.args_json() != planned.args_json():
        return "with other inputs"
    return None


def join_started(plan: Plan, started: dict[int, Task]) -> Plan:
    """The whole plan with every started task as it runs (the rule in the module's docstring)."""
    changed: set[int] = set()
    for i, planned in enumerate(plan.tasks):
        ran = started.get(planned.id)
        if ran is None:
            continue
        why = _differs(ran, planned)
        if why:
            changed.add(ran.id)
            plan.repairs.append(f"task {ran.id} started before the plan was whole, which reads it differently "
                                f"({why}); kept it as it runs")
        plan.tasks[i] = ran
    for tid, ran in started.items():
        if plan.get(tid) is None:
            changed.add(tid)
            plan.tasks.append(ran)
            plan.repairs.append(f"task {tid} started before the plan was whole, which leaves it out; "
                                "kept it as it runs")
    for task in plan.tasks:
        used = sorted(task.refs() & changed)
        if used and task.id not in started and not task.error:
            task.error = (f"it uses task {used[0]}, which started as the plan was being written and which "
                          "the whole plan reads differently")
    return plan
