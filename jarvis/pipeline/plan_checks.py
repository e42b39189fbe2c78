"""Stage 1's checks of a read plan: references exist and produce what they are used as, `dep` is
rebuilt from the references, every task has its inputs (an attached file fills a missing one),
and tasks on a dependency cycle fail. Each repair is recorded in the plan; what cannot run gets
an `error` (jarvis.pipeline.plan_reading reads the plan, then calls validate)."""
from __future__ import annotations

from jarvis.files.media_types import media_type
from jarvis.pipeline.plan import ArgValue, Plan, Ref, Task
from jarvis.runners.registry import TASK_TYPES, TaskType


def validate(plan: Plan, files: list[str]) -> None:
    """Check the plan in place: record each repair, set `error` on each task that cannot run."""
    by_id = {t.id: t for t in plan.tasks}
    notes = plan.repairs
    for t in plan.tasks:
        spec = TASK_TYPES.get(t.task)
        # references: exist, not self, produce the type they are used as
        for rtype in list(t.args):
            kept: list[ArgValue] = []
            for v in t.args[rtype]:
                if not isinstance(v, Ref):
                    kept.append(v)
                    continue
                src = by_id.get(v.task_id)
                if v.task_id == t.id:
                    t.error = t.error or f"task {t.id} uses its own output"
                elif src is None:
                    t.error = t.error or f"task {t.id} uses the output of task {v.task_id}, which is not in the plan"
                elif src.task in TASK_TYPES and rtype not in TASK_TYPES[src.task].outputs:
                    produced = TASK_TYPES[src.task].outputs
                    wanted = [r for r in produced if spec and r in spec.inputs]
                    if wanted:
                        t.args.setdefault(wanted[0], []).append(v)
                        notes.append(f"task {t.id}: task {src.id} produces {wanted[0]}, not {rtype}; used it as {wanted[0]}")
                        continue
                    t.error = t.error or (f"task {t.id} wants {rtype} from task {src.id} ({src.task}), "
                                          f"which produces {', '.join(produced)} only")
                kept.append(v)
            t.args[rtype] = kept
        t.args = {k: v for k, v in t.args.items() if v}
        refs = sorted(r for r in t.refs() if r in by_id and r != t.id)
        if refs != sorted(t.dep):
            notes.append(f"task {t.id}: dep {t.dep or [-1]} rebuilt from its references as {refs or [-1]}")
        t.dep = refs
        if spec and not t.error:
            _check_inputs(t, spec, files, notes)
    _break_cycles(plan)


def _check_inputs(t: Task, spec: TaskType, files: list[str], notes: list[str]) -> None:
    for rtype in dict.fromkeys(spec.inputs):     # in the order of the inputs: the same message every run
        need = spec.count(rtype)
        have = len(t.args.get(rtype, []))
        if have >= need:
            continue
        if rtype != "text":
            of_type = [f for f in files if media_type(f) == rtype]
            if len(of_type) == 1 and have == 0:
                t.args[rtype] = [of_type[0]]
                notes.append(f"task {t.id}: no {rtype} given; used the attached {of_type[0]}")
                continue
        names = spec.input_names or spec.inputs
        t.error = (f"{t.task} needs {need} {rtype} input(s) ({', '.join(n for n, r in zip(names, spec.inputs) if r == rtype)}) "
                   f"and the plan gave {have}")
        return


def _break_cycles(plan: Plan) -> None:
    """Mark tasks on a dependency cycle as failed (Kahn's algorithm leaves them unsorted)."""
    deps = {t.id: set(t.dep) for t in plan.tasks}
    done: set[int] = set()
    progress = True
    while progress:
        progress = False
        for tid, ds in deps.items():
            if tid not in done and ds <= done:
                done.add(tid)
                progress = True
    stuck = [t for t in plan.tasks if t.id not in done]
    on_cycle = sorted(t.id for t in stuck)
    for t in stuck:
        t.error = t.error or f"tasks {on_cycle} depend on each other in a cycle"
