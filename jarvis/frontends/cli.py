"""Command line: `python -m jarvis run "REQUEST" [--file PATH]... [--json]`, `chat`, `catalog refresh`,
`catalog verify`, `serve`, `workers` (Ray). Progress goes to stderr (the LLM's too, while it writes); the answer (or
--json's single object, RunResult.to_dict()) to stdout. The server stacks (gradio for `ui`; fastapi
and uvicorn for `serve`) load only for those commands."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from jarvis.errors import CatalogError, ConfigError
from jarvis.events import (
    AnswerDelta,
    Done,
    Event,
    Failed,
    LLMProgress,
    ModelChosen,
    PlanReady,
    TaskFailed,
    TaskFinished,
    TaskPlanned,
    TaskProgress,
    TaskSkipped,
    TaskStarted,
)
from jarvis.frontends.safe_text import TerminalFilter, json_text, terminal_text
from jarvis.pipeline.plan import Task
from jarvis.pipeline.records import RunResult

if TYPE_CHECKING:
    from jarvis.pipeline.controller import Controller
    from jarvis.session import Session


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jarvis", description="Jarvis: LLM-controlled Hugging Face models.")
    p.add_argument("--config", help="config file (default: $JARVIS_CONFIG or ./config.yaml)")
    p.add_argument("--mode", choices=["local", "remote", "hybrid"], help="override inference.mode")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log details to stderr (-vv: debug)")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="answer one request")
    run.add_argument("request")
    run.add_argument("--file", action="append", default=[], help="attach a file (repeatable)")
    run.add_argument("--json", action="store_true", help="print one JSON object with the whole record")
    run.add_argument("--out", default="jarvis-output",
                     help="folder that keeps this run's files (a new subfolder per run; default ./jarvis-output)")
    chat = sub.add_parser("chat", help="interactive chat that keeps the history")
    chat.add_argument("--file", action="append", default=[], help="attach a file to the first message")
    chat.add_argument("--out", default="jarvis-output",
                      help="folder that keeps this chat's files (a new subfolder per chat; default ./jarvis-output)")
    cat = sub.add_parser("catalog", help="model catalog commands")
    cat.add_argument("action", choices=["refresh", "show", "verify"])
    cat.add_argument("rest", nargs=argparse.REMAINDER)
    serve = sub.add_parser("serve", help="HTTP API (HuggingGPT- and OpenAI-compatible)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    sub.add_parser("ui", help="the web app (same as python app.py)")
    workers = sub.add_parser("workers", help="start or join Ray and deploy the local models' replicas "
                             "(local.backend: ray; docs/ray.md)")
    workers.add_argument("--address", help="override local.ray_address (auto, ray://HOST:10001)")
    return p


STAGES = {"plan": "writing the plan", "select": "choosing the models", "answer": "writing the answer"}
LOG_EVERY = 5.0    # seconds between two LLM progress lines when stderr is not a terminal


class Progress:
    """One line on stderr per step, so a person can follow the run. While the LLM writes, its
    progress is one status line rewritten in place on a terminal, else a line every LOG_EVERY s."""

    def __init__(self, out: TextIO):
        self.out = out
        self.tty = out.isatty()
        self.planned: dict[int, str] = {}   # the plan line shown for each task so far
        self.logged: dict[str, float] = {}  # per LLM stage: the seconds of its last progress line
        self.status = False                 # a status line is on the terminal
        self.quiet = False                  # the answer streams to the same terminal: no status line

    def clear(self) -> None:
        if self.status:
            self.out.write("\r\033[K")
            self.status = False

    def line(self, text: str) -> None:
        self.clear()
        print(terminal_text(text), file=self.out)    # model output in it must not drive the terminal

    def _task(self, t: Task) -> None:
        text = (f"plan: task {t.id} {t.task} dep={t.dep or [-1]} args={json.dumps(t.args_json(), ensure_ascii=False)}"
                + (f"  !! {t.error}" if t.error else ""))
        if self.planned.get(t.id) != text:
            self.planned[t.id] = text
            self.line(text)

    def _llm(self, event: LLMProgress) -> None:
        if event.note and not (self.tty and event.note_kind == "progress"):
            self.line(f"llm: {event.note}")      # the embedded LLM's load, and (logged) its download's progress
            return
        text = f"llm: {event.note}" if event.note else \
            f"llm: {STAGES.get(event.stage, event.stage)}: {event.tokens} tokens, {event.seconds:.0f} s"
        if self.tty:
            if not self.quiet:
                self.out.write("\r\033[K" + text)
                self.status = True
        elif event.seconds - self.logged.get(event.stage, -LOG_EVERY) >= LOG_EVERY:
            self.logged[event.stage] = event.seconds
            self.line(text)

    def __call__(self, event: Event) -> None:
        if isinstance(event, LLMProgress):
            self._llm(event)
        elif isinstance(event, TaskPlanned):
            self._task(event.task)
        elif isinstance(event, PlanReady):
            if not event.tasks:
                self.line("plan: no tasks (plain conversation)")
            for t in event.tasks:
                self._task(t)
            for r in event.repairs:
                self.line(f"plan: repaired: {r}")
        elif isinstance(event, ModelChosen):
            self.line(f"model: task {event.task_id} -> {event.model} ({event.reason})")
        elif isinstance(event, TaskStarted):
            self.line(f"run: task {event.task_id} {event.task} started on {event.executor} ({event.model})")
        elif isinstance(event, TaskProgress):
            self.line(f"run: task {event.task_id}: {event.message}")
        elif isinstance(event, TaskFinished):
            rec = event.record
            outs = ", ".join(f"{k}={v[:80] if k == 'text' else v}" for k, v in rec.outputs.items())
            replica = (rec.detail or {}).get("replica")     # where a task on Ray ran
            where = f"{rec.executor} replica {replica} on {rec.detail['node']}" if replica and rec.detail else rec.executor
            self.line(f"done: task {rec.id} in {rec.seconds or 0.0:.2f}s on {where}: {outs}")
        elif isinstance(event, TaskFailed):
            self.line(f"failed: task {event.record.id} {event.record.task}: {event.record.error}")
        elif isinstance(event, TaskSkipped):
            self.line(f"skipped: task {event.record.id} {event.record.task}: {event.record.error}")
        self.out.flush()


def _answer(controller: Controller, session: Session, request: str, files: Sequence[str | Path], *,
            as_json: bool) -> int:
    """Run one request: the answer streamed to stdout (or the --json record); 0 when answered."""
    result: RunResult | None = None
    streamed = False
    progress = Progress(sys.stderr)
    screen = TerminalFilter()      # the answer as text: no escape sequence of the model's reaches the terminal
    try:
        for event in controller.run(session, request, files):
            if isinstance(event, Failed):
                progress.clear()
                if streamed:
                    print(screen.close(), file=sys.stdout)
                print(f"error: {terminal_text(event.message)}", file=sys.stderr)
                return 1
            if isinstance(event, AnswerDelta):
                if not as_json:
                    progress.clear()
                    progress.quiet = True
                    sys.stdout.write(screen.feed(event.text))
                    sys.stdout.flush()
                    streamed = True
                continue
            if isinstance(event, Done):
                result = event.result
                continue
            progress(event)
    finally:
        progress.clear()
    if as_json:
        print(json_text(json.dumps(result.to_dict() if result is not None else None, ensure_ascii=False, indent=2,
                                   default=str)))
    elif streamed:
        print(screen.close())
    return 0 if result is not None else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    # each command imports what it needs, so `--help` and a mistyped command answer at once
    if args.command == "catalog" and args.action == "refresh":
        from jarvis.catalog.refresh import main as refresh_main
        return refresh_main(args.rest)
    if args.command == "catalog" and args.action == "verify":
        from jarvis.catalog.verify import main as verify_main
        return verify_main(args.rest)
    from jarvis.config import load_config
    try:
        config = load_config(args.config)
        if args.mode:
            config = config.with_overrides(inference={"mode": args.mode})
    except ConfigError as exc:
        print(f"error: bad config: {exc}", file=sys.stderr)
        return 2
    if args.command == "catalog":
        from jarvis.catalog.entries import Catalog
        cat = Catalog.load(config.catalog.path or None)
        for task in cat.tasks():
            print(f"{task}: {', '.join(m.id for m in cat.candidates(task, k=10, mode='hybrid'))}")
        return 0
    if args.command == "serve":
        from jarvis.frontends.http.app import serve
        return serve(config, host=args.host, port=args.port)
    if args.command == "ui":
        from jarvis.frontends.web.app import launch
        return launch(config)
    if args.command == "workers":
        from jarvis.execution.ray.workers import run_workers
        return run_workers(config.local if args.address is None else
                           config.with_overrides(local={"ray_address": args.address}).local)
    from jarvis.execution.local_slots import local_executor
    from jarvis.pipeline.controller import Controller
    try:
        controller = Controller(config, local=local_executor(config.local))
    except (CatalogError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run_or_chat(args, controller)
    finally:
        controller.close()


def _run_or_chat(args: argparse.Namespace, controller: Controller) -> int:
    """`run` or `chat` in a new session whose files go to a new folder under --out: reported at the
    end (they are the user's results), removed when nothing was produced."""
    if args.command == "run":
        missing = [f for f in args.file if not Path(f).is_file()]
        if missing:
            print(f"error: file not found: {missing[0]}", file=sys.stderr)
            return 2
    out_dir = Path(args.out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    try:
        out_dir.mkdir(parents=True)
    except OSError as exc:
        print(f"error: cannot create the output folder {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    from jarvis.session import Session
    session = Session.create(controller.config, root=out_dir)
    try:
        if args.command == "run":
            return _answer(controller, session, args.request, args.file, as_json=args.json)
        return _chat(controller, session, args.file)
    finally:
        session.cancel.set()
        if not any(session.store.root.iterdir()):
            session.store.root.rmdir()
        else:
            print(f"files of this run: {session.store.root}", file=sys.stderr)


def _chat(controller: Controller, session: Session, files: Sequence[str | Path]) -> int:
    """Read requests from stdin until /quit; each answer keeps the session's history."""
    print("Jarvis chat. Attach files with '/file PATH', quit with '/quit' or Ctrl-D.", file=sys.stderr)
    pending = list(files)
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return 0
        if line.startswith("/file "):
            path = line[6:].strip()
            if Path(path).is_file():
                pending.append(path)
                print(f"attached {Path(path).name}", file=sys.stderr)
            else:
                print(f"error: file not found: {path}", file=sys.stderr)
            continue
        sys.stdout.write("jarvis> ")
        _answer(controller, session, line, pending, as_json=False)
        pending = []
