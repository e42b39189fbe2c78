"""Throughput of local models for many users (issue 15): the in-process backend against Ray Serve.

8 sessions send a request at the same time, each planned (by a scripted LLM over real HTTP) into one
local task that takes a fixed time (a sleeping runner), through the controller:
- in-process: the server's setup (jarvis.frontends.http.serving), one local slot: the tasks run one
  after another;
- Ray: the model deployment with 2 replicas on a local Ray instance, the same sleep as its runner.
Prints each wall time and the throughput ratio (target: Ray >= 1.8x), then the time Ray adds to one
task (a zero-second task, sequential calls, median) and Ray's start and deploy times.

Run: python -m bench.scale [--sessions 8] [--seconds 1.0]
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from typing import Any

from bench.fixed_executor import FixedExecutor
from jarvis.config import LocalConfig, load_config
from jarvis.events import Done
from jarvis.execution.executor import Executor
from jarvis.execution.local_slots import SlotLimitedExecutor
from jarvis.pipeline.controller import Controller
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.session import Session
from tests.fakes.llm_server import ScriptedLLM

TASK = "text-classification"
MODEL = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
PLAN = json.dumps([{"task": TASK, "id": 0, "dep": [-1], "args": {"text": "I love this film"}}])
SELECT = json.dumps({"0": {"id": MODEL, "reason": "the benchmark's model"}})


class SleepRunner(Runner):
    """A runner whose work is a fixed sleep: it loads nothing and answers a fixed label."""
    task = TASK

    def __init__(self, seconds: float):
        self.seconds = seconds

    def load(self, model_id: str, device: Device) -> None:
        return None

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        time.sleep(self.seconds)
        return TaskOutputs(text="POSITIVE (score 1.00)", detail={"labels": [{"label": "POSITIVE", "score": 1.0}]})


def concurrent_sessions(url: str, local: Executor, sessions: int) -> float:
    """Seconds until every one of `sessions` simultaneous requests is answered."""
    cfg = load_config(env={"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-bench"}).with_overrides(
        llm={"max_retries": 0}, inference={"mode": "local"})
    controller = Controller(cfg, local=local)
    done: list[str] = []
    gate = threading.Barrier(sessions + 1)

    def one() -> None:
        session = Session.create(cfg)
        try:
            gate.wait()
            events = list(controller.run(session, "Is this positive?"))
            result = next(e.result for e in events if isinstance(e, Done))
            done.append(str(result.tasks[0].executor if result.tasks[0].status == "done" else result.tasks[0].error))
        finally:
            session.close()

    threads = [threading.Thread(target=one) for _ in range(sessions)]
    for t in threads:
        t.start()
    gate.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    assert len(done) == sessions and len(set(done)) == 1, done
    return wall


def per_task_seconds(local: Executor, calls: int) -> float:
    """Median seconds of one executor call on a zero-second task, calls made one after another."""
    ctx = RunContext(Device(), new_file=lambda stem, suffix: NotImplemented)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        local.run(TASK, MODEL, TaskInputs(text=["I love this film"]), ctx)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=1.0, help="how long each task sleeps")
    ap.add_argument("--replicas", type=int, default=2)
    args = ap.parse_args()
    from jarvis.execution.ray.cluster import connect, deploy
    from jarvis.execution.ray.deployment import ReplicaSettings
    from jarvis.execution.ray.executor import RayExecutor

    with ScriptedLLM(plan=PLAN, select=SELECT, answer="It is positive.", key="sk-bench") as server:
        inprocess = concurrent_sessions(server.url, SlotLimitedExecutor(FixedExecutor(args.seconds), 1), args.sessions)
        print(f"in-process (one local slot): {args.sessions} sessions x {args.seconds:g} s tasks in {inprocess:.2f} s")

        local = LocalConfig(device="cpu", backend="ray", ray_replicas=args.replicas, ray_cpus_per_replica=0.5)
        cluster = connect(local, num_cpus=2, include_dashboard=False)
        try:
            started = time.perf_counter()
            settings = ReplicaSettings.from_config(local)
            handle = deploy(settings, {TASK: SleepRunner(args.seconds)})
            deployed = time.perf_counter() - started
            ray = RayExecutor(handle, settings)
            concurrent_sessions(server.url, ray, args.replicas)   # warm: every replica has served once
            on_ray = concurrent_sessions(server.url, ray, args.sessions)
            print(f"Ray Serve ({args.replicas} replicas): {args.sessions} sessions x {args.seconds:g} s tasks "
                  f"in {on_ray:.2f} s")
            print(f"throughput ratio Ray / in-process: {inprocess / on_ray:.2f}x (target >= 1.8x)")
            handle = deploy(settings, {TASK: SleepRunner(0.0)})
            zero_ray = per_task_seconds(RayExecutor(handle, settings), 30)
            zero_local = per_task_seconds(FixedExecutor(0.0), 30)
            print(f"time Ray adds to one task: {1000 * (zero_ray - zero_local):.1f} ms "
                  f"(a zero-second task: {1000 * zero_ray:.1f} ms on Ray, {1000 * zero_local:.2f} ms in-process; "
                  "median of 29 sequential calls)")
            print(f"Ray start: {cluster.seconds:.1f} s; deploying {args.replicas} replicas: {deployed:.1f} s")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
