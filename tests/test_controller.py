"""End to end through the controller and the CLI: scripted LLM over HTTP, tiny real models."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jarvis.events import ModelChosen, PlanReady, TaskFailed, TaskSkipped
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json, run_to_end

ROOT = Path(__file__).resolve().parent.parent
SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"


@pytest.fixture(scope="module")
def controller(tiny_models):
    return Controller(config_for("http://127.0.0.1:9/v1"))


def session_for(server, tmp_path, **sections):
    return Session.create(config_for(server.url, **sections), root=tmp_path / "session")


def pick_top(messages):
    """A selector that names, for every task in the prompt, the first candidate listed."""
    lines = messages[-1]["content"].splitlines()
    out, current = {}, None
    for line in lines:
        if line.startswith("Task "):
            current = line.split()[1].rstrip(":")
        elif line.startswith("- ") and current is not None and current not in out:
            out[current] = {"id": line[2:].split(" ")[0].rstrip(":"), "reason": "top of the list"}
    return json.dumps(out)


def test_single_task(controller, tmp_path):
    plan = plan_json(("text-classification", {"text": "I love this film"}))
    with ScriptedLLM(plan=plan, select=pick_top, answer="It is positive.") as server:
        session = session_for(server, tmp_path)
        events, result, failed = run_to_end(controller, session, "Is 'I love this film' positive?")
    assert failed is None
    task = result.tasks[0]
    assert task.status == "done" and task.model == SST2 and task.executor == "local"
    assert task.outputs["text"]
    assert result.answer == "It is positive."
    kinds = server.kinds()
    assert kinds.count("plan") == 1 and kinds.count("answer") == 1 and kinds.count("select") <= 1
    assert result.usage.llm_calls == len(kinds)
    assert any(isinstance(e, ModelChosen) for e in events)   # chosen by the selector: after the whole plan
    assert [type(e) for e in events if isinstance(e, (PlanReady, ModelChosen))][0] is PlanReady


def test_text_chain_and_dag_order(controller, tmp_path):
    # 0 and 1 are independent; 2 needs both: 2 starts after both finish
    plan = plan_json(("text-generation", {"text": "Once upon a time"}),
                     ("summarization", {"text": "The cat sat on the mat. The dog barked at the cat all day long."}),
                     ("sentence-similarity", {"text": ["<GENERATED>-0", "<GENERATED>-1"]}, [0, 1]),
                     ("text-classification", {"text": "<GENERATED>-1"}, [1]))
    with ScriptedLLM(plan=plan, select=pick_top, answer="Here you go.") as server:
        events, result, failed = run_to_end(controller, session_for(server, tmp_path), "story things")
    assert failed is None
    tasks = {t.id: t for t in result.tasks}
    assert all(t.status == "done" for t in tasks.values()), [t.error for t in tasks.values()]
    assert tasks[2].started >= max(tasks[0].finished, tasks[1].finished)
    assert tasks[3].started >= tasks[1].finished
    assert set(result.timings.to_dict()) == {"plan", "select", "execute", "respond", "total"}


def test_failure_skips_dependents_and_rest_goes_on(controller, tmp_path):
    plan = plan_json(("image-classification", {"image": "missing.png"}),
                     ("text-classification", {"text": "<GENERATED>-0"}, [0]),
                     ("text-classification", {"text": "fine"}))
    with ScriptedLLM(plan=plan, select=pick_top, answer="Partly done.") as server:
        events, result, failed = run_to_end(controller, session_for(server, tmp_path), "do it")
    tasks = {t.id: t for t in result.tasks}
    assert tasks[0].status == "failed" and "not a file of this session" in tasks[0].error
    assert tasks[1].status == "skipped" and "task 0" in tasks[1].error
    assert tasks[2].status == "done"
    assert any(isinstance(e, TaskFailed) for e in events) and any(isinstance(e, TaskSkipped) for e in events)


@pytest.mark.parametrize("path", ["/etc/passwd", "../../etc/passwd", "file:///etc/passwd", "ftp://example.com/a.png"])
def test_paths_outside_the_session_are_refused(controller, tmp_path, path):
    plan = plan_json(("image-classification", {"image": path}))
    with ScriptedLLM(plan=plan, answer="no") as server:
        _, result, _ = run_to_end(controller, session_for(server, tmp_path), "classify")
    task = result.tasks[0]
    assert task.status == "failed" and task.error


def test_empty_plan_is_conversation(controller, tmp_path):
    with ScriptedLLM(plan="[]", chat="Hi! How can I help?") as server:
        events, result, failed = run_to_end(controller, session_for(server, tmp_path), "hello")
    assert result.tasks == [] and result.answer == "Hi! How can I help?"
    assert server.kinds() == ["plan", "chat"]


def test_unreadable_plan_answers_directly(controller, tmp_path):
    with ScriptedLLM(plan="Sorry, I am not sure what you mean.", chat="Could you say more?") as server:
        _, result, failed = run_to_end(controller, session_for(server, tmp_path), "hmm")
    assert failed is None and result.answer == "Could you say more?" and result.plan_repairs


def test_history_lets_a_later_turn_name_an_earlier_resource(controller, tmp_path):
    plans = iter([plan_json(("text-classification", {"text": "good"})), "[]"])
    with ScriptedLLM(plan=lambda m: next(plans), select=pick_top, answer="done", chat="ok") as server:
        session = session_for(server, tmp_path)
        run_to_end(controller, session, "first request")
        run_to_end(controller, session, "second request")
        second_plan_call = [r["json"]["messages"] for r in server.requests if "You are the planner" in
                            r["json"]["messages"][0]["content"]][1]
    contents = [m["content"] for m in second_plan_call]
    assert "first request" in contents[1] and contents[-1] == "second request"


def test_llm_down_is_one_clear_failure(controller, tmp_path):
    session = Session.create(config_for("http://127.0.0.1:9/v1"), root=tmp_path / "s")
    _, result, failed = run_to_end(controller, session, "anything")
    assert result is None and "cannot reach" in failed


def cli(args, env_extra, timeout=240, out=None):
    env = {**os.environ, **env_extra}
    if out is not None:
        args = [*args, "--out", str(out)]
    return subprocess.run([sys.executable, "-m", "jarvis", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_json_record(tiny_models, tmp_path):
    plan = plan_json(("text-classification", {"text": "what a lovely day"}),
                     ("token-classification", {"text": "Ann lives in Paris"}))
    with ScriptedLLM(plan=plan, select=pick_top, answer="Positive; Ann is a person.", key="sk-cli") as server:
        proc = cli(["run", "classify these", "--json"], {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-cli"},
                   out=tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert set(record) >= {"request", "tasks", "answer", "usage", "timings"}
    for task in record["tasks"]:
        assert set(task) >= {"id", "task", "dep", "args", "model", "reason", "executor", "status", "outputs",
                             "error", "started", "finished"}
        assert task["status"] == "done"
    assert record["usage"]["llm_calls"] >= 2 and record["usage"]["prompt_tokens"] > 0


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inference:\n  mode: cloud\n")
    proc = cli(["--config", str(bad), "run", "x"], {})
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "inference.mode" in proc.stderr
    proc = cli(["run", "x"], {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-x"},
               out=tmp_path / "out")
    assert proc.returncode != 0 and "cannot reach" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli(["run", "x", "--file", str(tmp_path / "nope.png")], {})
    assert proc.returncode == 2 and "file not found" in proc.stderr


def test_two_prompts_on_one_model_run_as_one_batch(tmp_path, tiny_models):
    plan = plan_json(("text-to-image", {"text": "a red fox"}), ("text-to-image", {"text": "a blue bird"}),
                     ("image-classification", {"image": "<GENERATED>-1"}, [1]))
    with ScriptedLLM(plan=plan, select=pick_top, answer="Two pictures.") as server:
        cfg = config_for(server.url, local={"diffusion_steps": 2})
        controller = Controller(cfg)
        _, result, failed = run_to_end(controller, Session.create(cfg, root=tmp_path / "s"), "two pictures")
    tasks = result.tasks
    assert all(t.status == "done" for t in tasks), [t.error for t in tasks]
    assert tasks[0].attempts[0].batch == 2 and tasks[1].attempts[0].batch == 2
    assert tasks[0].outputs["image"] != tasks[1].outputs["image"]
    assert controller.local.cache.stats.loads == 2  # the diffusion model once, the classifier once


def test_cli_keeps_generated_files(tiny_models, tmp_path):
    plan = plan_json(("text-to-speech", {"text": "hello there"}))
    with ScriptedLLM(plan=plan, select=pick_top, answer="Here is the audio.", key="sk-cli") as server:
        proc = cli(["run", "say hello", "--json"], {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-cli"},
                   out=tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    audio = Path(json.loads(proc.stdout)["tasks"][0]["outputs"]["audio"])
    assert audio.is_file() and audio.is_relative_to(tmp_path / "out") and "files of this run" in proc.stderr
