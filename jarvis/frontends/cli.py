"""Command line: `python -m jarvis run "REQUEST" [--file PATH]... [--json]`, `chat`, `catalog refresh`,
`catalog verify`, `serve`. Progress goes to stderr; the answer (or --json's single object, RunResult.to_dict()) to
stdout. The server stacks (gradio for `ui`; fastapi and uvicorn for `serve`) load only for those commands."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from jarvis.catalog.entries import Catalog
from jarvis.catalog.refresh import main as refresh_main
from jarvis.catalog.verify import main as verify_main
from jarvis.config import load_config
from jarvis.errors import CatalogError, ConfigError
from jarvis.events import (
    AnswerDelta,
    Done,
    Event,
    Failed,
    ModelChosen,
    PlanReady,
    TaskFailed,
    TaskFinished,
    TaskProgress,
    TaskSkipped,
    TaskStarted,
)
from jarvis.pipeline.controller import Controller
from jarvis.pipeline.records import RunResult
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
    return p


def _progress(event: Event, out: TextIO) -> None:
    """One line on stderr per step, so a person can follow the run."""
    if isinstance(event, PlanReady):
        if not event.tasks:
            print("plan: no tasks (plain conversation)", file=out)
        for t in event.tasks:
            print(f"plan: task {t.id} {t.task} dep={t.dep or [-1]} args={json.dumps(t.args_json(), ensure_ascii=False)}"
                  + (f"  !! {t.error}" if t.error else ""), file=out)
        for r in event.repairs:
            print(f"plan: repaired: {r}", file=out)
    elif isinstance(event, ModelChosen):
        print(f"model: task {event.task_id} -> {event.model} ({event.reason})", file=out)
    elif isinstance(event, TaskStarted):
        print(f"run: task {event.task_id} {event.task} started on {event.executor} ({event.model})", file=out)
    elif isinstance(event, TaskProgress):
        print(f"run: task {event.task_id}: {event.message}", file=out)
    elif isinstance(event, TaskFinished):
        rec = event.record
        outs = ", ".join(f"{k}={v[:80] if k == 'text' else v}" for k, v in rec.outputs.items())
        print(f"done: task {rec.id} in {rec.seconds or 0.0:.2f}s: {outs}", file=out)
    elif isinstance(event, TaskFailed):
        print(f"failed: task {event.record.id} {event.record.task}: {event.record.error}", file=out)
    elif isinstance(event, TaskSkipped):
        print(f"skipped: task {event.record.id} {event.record.task}: {event.record.error}", file=out)
    out.flush()


def _answer(controller: Controller, session: Session, request: str, files: Sequence[str | Path], *,
            as_json: bool) -> int:
    """Run one request: the answer streamed to stdout (or the --json record); 0 when answered."""
    result: RunResult | None = None
    streamed = False
    for event in controller.run(session, request, files):
        if isinstance(event, Failed):
            if streamed:
                print(file=sys.stdout)
            print(f"error: {event.message}", file=sys.stderr)
            return 1
        if isinstance(event, AnswerDelta):
            if not as_json:
                sys.stdout.write(event.text)
                sys.stdout.flush()
                streamed = True
            continue
        if isinstance(event, Done):
            result = event.result
            continue
        _progress(event, sys.stderr)
    if as_json:
        print(json.dumps(result.to_dict() if result is not None else None, ensure_ascii=False, indent=2, default=str))
    elif streamed:
        print()
    return 0 if result is not None else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command == "catalog" and args.action == "refresh":
        return refresh_main(args.rest)
    if args.command == "catalog" and args.action == "verify":
        return verify_main(args.rest)
    try:
        config = load_config(args.config)
        if args.mode:
            config = config.with_overrides(inference={"mode": args.mode})
    except ConfigError as exc:
        print(f"error: bad config: {exc}", file=sys.stderr)
        return 2
    if args.command == "catalog":
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
    try:
        controller = Controller(config)
    except CatalogError as exc:
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
