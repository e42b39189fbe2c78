"""Stage 1's result: the plan as validated Task / Plan objects, in HuggingGPT's format.

A task's inputs are literals or references to another task's output (`<GENERATED>-K`, a Ref); its
`dep` lists the tasks it waits for. Reading the LLM's answer into a plan is jarvis.pipeline.plan_reading,
checking it (references, inputs, cycles) jarvis.pipeline.plan_checks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Possessive quantifiers: with plain \s* a long run of spaces after "<GENERATED" backtracks for
# minutes. At most 9 digits, so a 5000-digit "id" is text, never an int too long to convert. Space after
# the number belongs to the reference only before a closing ">": "<GENERATED>-0 and" keeps its space.
REF = re.compile(r"<\s*+GENERATED\s*+>?\s*+[-_:]?\s*+(\d{1,9}+)(?!\d)(?:\s*+>)?", re.I)


@dataclass
class Ref:
    """A value that is the output of another task."""
    task_id: int

    def __str__(self) -> str:
        return f"<GENERATED>-{self.task_id}"


ArgValue = str | Ref   # a literal (text, file name, URL) or another task's output


@dataclass
class Task:
    """One planned task: its type, the tasks it waits for, its inputs by resource type."""
    id: int
    task: str
    dep: list[int]
    args: dict[str, list[ArgValue]]    # resource type -> values in input order
    error: str | None = None           # set when the task cannot run as planned

    def refs(self) -> set[int]:
        """The tasks whose outputs this task uses."""
        out: set[int] = set()
        for values in self.args.values():
            for v in values:
                if isinstance(v, Ref):
                    out.add(v.task_id)
                elif isinstance(v, str):
                    out.update(int(m) for m in REF.findall(v))
        return out

    def args_json(self) -> dict[str, str | list[str]]:
        """Args as the seed's format shows them: one value, or a list when there are several."""
        out: dict[str, str | list[str]] = {}
        for rtype, values in self.args.items():
            shown = [str(v) for v in values]
            out[rtype] = shown[0] if len(shown) == 1 else shown
        return out

    def to_dict(self) -> dict[str, Any]:
        """The task in HuggingGPT's plan format (plus its error, when it cannot run)."""
        d: dict[str, Any] = {"id": self.id, "task": self.task, "dep": self.dep or [-1], "args": self.args_json()}
        if self.error:
            d["error"] = self.error
        return d


@dataclass
class Plan:
    """The validated plan: its tasks in plan order, and what the parser repaired."""
    tasks: list[Task] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    raw: str = ""

    def get(self, task_id: int) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def to_list(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self.tasks]


def topological_order(plan: Plan) -> list[Task]:
    """The plan's tasks, each after the tasks it depends on (tasks on a cycle last)."""
    order: list[Task] = []
    done: set[int] = set()
    pending = list(plan.tasks)
    while pending:
        ready = [t for t in pending if set(t.dep) <= done]
        if not ready:
            order.extend(pending)
            break
        for t in ready:
            order.append(t)
            done.add(t.id)
            pending.remove(t)
    return order
