"""Gradio Spaces as executors (issue 14): a loopback Gradio app stands in for a Space and is called
through the real gradio_client; the loopback inference service stands for Inference Providers and the
scripted LLM server plans. Nothing in jarvis is patched."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from jarvis.catalog.entries import Catalog, parse_entry
from jarvis.credentials import is_hf_space, space_token
from jarvis.execution.dispatch import Dispatcher
from jarvis.pipeline.controller import Controller
from jarvis.runners.base import Device, RunContext, TaskInputs, TaskOutputs
from jarvis.session import Session
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.gradio_space import LoopbackSpace
from tests.fakes.inference_server import InferenceServer
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json, run_to_end
from tests.test_catalog_refresh import BERT, FakeHub, run_refresh
from tests.test_catalog_refresh import fake_hub as _fake_hub  # noqa: F401 (the loopback Hub, a fixture)
from tests.test_controller import pick_top

pytestmark = pytest.mark.timeout(120)
STREET = Path(__file__).resolve().parent.parent / "examples" / "street.png"
CAPTIONER = "Salesforce/blip-image-captioning-base"     # served by the loopback inference service
REMOTE_TTS = "facebook/mms-tts-eng"
USER_TOKEN = "hf_user_token"


@pytest.fixture(scope="module")
def space():
    with LoopbackSpace() as s:
        yield s


@pytest.fixture()
def service():
    with InferenceServer(token=USER_TOKEN) as srv:
        yield srv


def space_entry(space: LoopbackSpace, name: str, api_name: str, task: str = "text-to-speech") -> dict:
    return {"id": f"spaces/loopback/{name}", "task": task, "space": space.url, "api_name": api_name,
            "description": f"the loopback Space's {api_name}"}


def run(tmp_path: Path, llm: ScriptedLLM, service: InferenceServer, rows: list[dict], request: str,
        files=(), mode: str = "remote", **remote):
    tmp_path.mkdir(parents=True, exist_ok=True)
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    cfg = config_for(llm.url, inference={"mode": mode}, catalog={"path": str(catalog)},
                     remote={"base_url": service.url, "timeout": 10, "max_retries": 1, **remote},
                     credentials={"hf_token": USER_TOKEN})
    controller = Controller(cfg)
    try:
        _, result, failed = run_to_end(controller, Session.create(cfg, root=tmp_path / "session"), request, files)
    finally:
        controller.close()
    assert failed is None, failed
    return result


def test_a_space_speaks_alone_and_after_another_task_and_gets_no_token_off_hugging_face(
        space, service, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_machine_token")     # saved on the machine: gradio_client's default
    rows = [{"id": CAPTIONER, "task": "image-to-text", "downloads": 10},
            space_entry(space, "speaker", "/speak")]
    with ScriptedLLM(plan=plan_json(("text-to-speech", {"text": "hello from the Space"})), answer="Done.") as llm:
        result = run(tmp_path / "alone", llm, service, rows, "say hello")
        speech = result.tasks[0]
        assert (speech.status, speech.executor, speech.model) == ("done", "space", "spaces/loopback/speaker")
        assert [(a.executor, a.ok) for a in speech.attempts] == [("space", True)]
        samples, rate = sf.read(speech.outputs["audio"])
        assert rate == 16000 and len(samples) > 0 and speech.outputs["audio"].endswith(".wav")
        assert speech.detail == {"space": space.url, "api_name": "/speak", "route": "ran on the Gradio Space the "
                                 "catalog names for spaces/loopback/speaker: no Inference Provider serves a catalog "
                                 "model of text-to-speech"}
        assert space.calls[-1] == ("speak", ("hello from the Space",))
        # after a task on Inference Providers: the Space speaks that task's caption
        llm.script["plan"] = plan_json(("image-to-text", {"image": "street.png"}),
                                       ("text-to-speech", {"text": "<GENERATED>-0"}, [0]))
        result = run(tmp_path / "after", llm, service, rows, "caption and speak", [STREET])
    caption, speech = result.tasks
    assert (caption.executor, speech.executor) == ("remote", "space")
    assert speech.status == "done" and space.calls[-1] == ("speak", (caption.outputs["text"],))
    # the user's token went to the inference service; the Space (not on Hugging Face) got no token at all
    assert {r.headers.get("authorization") for r in service.requests} == {f"Bearer {USER_TOKEN}"}
    assert space.headers and space.tokens_seen() == set()


def test_a_space_that_errors_hands_the_task_to_the_next_candidate(space, service, tmp_path):
    rows = [space_entry(space, "broken", "/broken"), {"id": REMOTE_TTS, "task": "text-to-speech"}]
    with ScriptedLLM(plan=plan_json(("text-to-speech", {"text": "try me"})), select=pick_top, answer="ok") as llm:
        result = run(tmp_path, llm, service, rows, "say it")
    speech = result.tasks[0]
    assert speech.status == "done" and (speech.executor, speech.model) == ("remote", REMOTE_TTS)
    failed, worked = speech.attempts
    assert (failed.executor, failed.model, failed.ok) == ("space", "spaces/loopback/broken", False)
    assert failed.error == f"the Space {space.url} failed: CUDA out of memory"
    assert (worked.executor, worked.model, worked.ok) == ("remote", REMOTE_TTS, True)
    assert ("broken", ("try me",)) in space.calls


def test_a_space_past_the_timeout_is_left_for_the_next_one(space, service, tmp_path):
    space.slow_seconds = 3.0
    rows = [space_entry(space, "slow", "/slow"), space_entry(space, "speaker", "/speak")]
    with ScriptedLLM(plan=plan_json(("text-to-speech", {"text": "quick"})), select=pick_top, answer="ok") as llm:
        result = run(tmp_path, llm, service, rows, "say it", timeout=1)
    speech = result.tasks[0]
    assert speech.status == "done" and speech.model == "spaces/loopback/speaker"
    slow = speech.attempts[0]
    assert not slow.ok and "did not answer within 1s (remote.timeout)" in slow.error and slow.seconds < 2.5


def test_spaces_run_in_remote_and_hybrid_mode_never_locally(space, service, tmp_path):
    rows = [space_entry(space, "speaker", "/speak")]
    with ScriptedLLM(plan=plan_json(("text-to-speech", {"text": "hybrid"})), answer="ok") as llm:
        result = run(tmp_path / "hybrid", llm, service, rows, "say it", mode="hybrid")
        assert (result.tasks[0].status, result.tasks[0].executor) == ("done", "space")
        result = run(tmp_path / "local", llm, service, rows, "say it", mode="local")
        assert result.tasks[0].status == "failed" and result.tasks[0].model is None


def test_the_dispatcher_tries_a_space_at_its_rank(tmp_path):
    class SpaceFake(FakeExecutor):
        def serves(self, task: str, model_id: str) -> bool:
            return model_id.startswith("spaces/")

    def fail(task: str, model: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        raise RuntimeError("no")

    local, remote, spaces = (FakeExecutor(fail, name="local", ready=False), FakeExecutor(fail, name="remote"),
                             SpaceFake(fail, name="space"))
    ctx = RunContext(device=Device(), new_file=lambda stem, suffix: tmp_path / f"{stem}{suffix}")
    models = ["org/a", "spaces/o/s", "org/b"]
    for mode, expected in [("hybrid", [("remote", "org/a"), ("space", "spaces/o/s"), ("remote", "org/b"),
                                       ("local", "org/a")]),
                           ("remote", [("remote", "org/a"), ("space", "spaces/o/s"), ("remote", "org/b")]),
                           ("local", [("local", "org/a"), ("local", "org/b")])]:
        with pytest.raises(Exception) as failed:
            Dispatcher(mode, local, remote, None, spaces).execute("text-to-speech", models[0], models[1:],
                                                                  TaskInputs(text=["x"]), ctx)
        assert [(a.executor, a.model) for a in failed.value.attempts] == expected, mode


def test_catalog_entries_name_a_space_and_its_endpoint():
    entry = parse_entry({"id": "spaces/o/n", "task": "tts", "space": "o/n", "api_name": "/predict",
                         "params": {"voice": "af_heart"}})
    assert (entry.task, entry.space, entry.api_name, entry.params) == ("text-to-speech", "o/n", "/predict",
                                                                        {"voice": "af_heart"})
    assert entry.remote and not entry.runs_locally()
    assert parse_entry(entry.to_json()) == entry
    for bad, why in [({"space": "o/n"}, "needs its endpoint"), ({"space": "not a space", "api_name": "/p"}, "Space id"),
                     ({"api_name": "/p"}, "belong to an entry with a 'space'"),
                     ({"space": "o/n", "api_name": "/p", "params": ["x"]}, "'params' must be an object")]:
        with pytest.raises(ValueError, match=why):
            parse_entry({"id": "spaces/o/n", "task": "text-to-speech", **bad})


def test_the_shipped_spaces_serve_task_types_no_provider_does_and_only_remotely():
    shipped = [m for m in Catalog.load() if m.space]
    assert {m.task for m in shipped} == {"text-to-speech", "image-to-text", "visual-question-answering"}
    catalog = Catalog.load()
    for m in shipped:
        assert m.id.startswith("spaces/") and m.api_name.startswith("/") and is_hf_space(m.space)
        assert m.id in [c.id for c in catalog.candidates(m.task, k=5, mode="remote")]   # the default top_k
        assert m.id in [c.id for c in catalog.candidates(m.task, k=5, mode="hybrid")]
        assert m.id not in [c.id for c in catalog.candidates(m.task, k=20, mode="local")]


def test_the_hf_token_goes_to_spaces_on_hugging_face_only():
    on_hf = ["ResembleAI/Chatterbox", "https://resembleai-chatterbox.hf.space", "https://huggingface.co/spaces/o/n"]
    elsewhere = ["http://127.0.0.1:7860", "http://o-n.hf.space", "https://o-n.hf.space.evil.example",
                 "https://evil.example/o-n.hf.space", "https://user:pw@o-n.hf.space", "https://o-n.hf.space:8443"]
    assert [space_token(s, "hf_x") for s in on_hf] == ["hf_x"] * 3
    assert [space_token(s, "hf_x") for s in elsewhere] == [""] * len(elsewhere)


def test_catalog_refresh_keeps_space_entries_and_looks_up_no_facts_for_them(_fake_hub, tmp_path):  # noqa: F811
    space = {"id": "spaces/o/ner", "task": "token-classification", "space": "o/ner", "api_name": "/tag",
             "description": "a Space that tags names"}
    output = tmp_path / "catalog.jsonl"
    output.write_text(json.dumps({"id": BERT, "task": "token-classification", "description": "ner"}) + "\n"
                      + json.dumps(space) + "\n")
    FakeHub.requests.clear()
    result = run_refresh(_fake_hub, tmp_path, "--output", str(output), "--keep-models")
    assert result.returncode == 0, result.stderr
    assert "updated the facts of 1 entries" in result.stdout
    assert not [repo for kind, repo, _ in FakeHub.requests if repo.startswith("spaces/")]
    result = run_refresh(_fake_hub, tmp_path, "--output", str(output), "--per-task", "2", "--task",
                         "token-classification")
    assert result.returncode == 0, result.stderr
    kept = [m for m in Catalog.load(output) if m.space]
    assert [m.to_json() for m in kept] == [parse_entry(space).to_json()]


def test_remote_mode_offers_the_task_types_spaces_serve_and_says_where_each_task_went(space, service, tmp_path):
    """The planner is offered what some remote route serves: a Space's task types (depth estimation has
    no Inference Provider at all), Inference Providers' where the catalog has a model they may serve;
    a task type nobody serves remotely fails with the modes and routes that would serve it."""
    rows = [{"id": REMOTE_TTS, "task": "text-to-speech", "providers": [], "providers_checked": "2026-01-01"},
            space_entry(space, "speaker", "/speak"), space_entry(space, "depth", "/depth", task="depth-estimation"),
            {"id": CAPTIONER, "task": "image-to-text", "downloads": 10}]
    plan = plan_json(("text-to-speech", {"text": "read this aloud"}), ("depth-estimation", {"image": "street.png"}),
                     ("summarization", {"text": "a long text"}))
    with ScriptedLLM(plan=plan, answer="Done.") as llm:
        result = run(tmp_path, llm, service, rows, "speak, depth, summarize", [STREET])
        offered = llm.requests[0]["json"]["messages"][0]["content"]
    assert "text-to-speech: text -> audio" in offered and "depth-estimation: image -> image" in offered
    assert "image-to-text: image -> text" in offered
    assert "summarization:" not in offered and "tabular-classification:" not in offered
    speech, depth, summary = result.tasks
    assert (speech.status, speech.executor, speech.model) == ("done", "space", "spaces/loopback/speaker")
    assert sf.read(speech.outputs["audio"])[0].size > 0  # the two tasks run at once: their calls come in either order
    assert ("speak", ("read this aloud",)) in space.calls[-2:] and "depth" in [name for name, _ in space.calls[-2:]]
    assert (depth.status, depth.executor) == ("done", "space") and Path(depth.outputs["image"]).is_file()
    assert depth.detail["route"] == ("ran on the Gradio Space the catalog names for spaces/loopback/depth: Inference "
                                     "Providers have no service for depth-estimation")
    assert summary.status == "failed" and summary.error.startswith(
        "no model available for summarization in remote mode (no remote route: Inference Providers serve no catalog "
        "model of it and no Gradio Space in the catalog runs it)")



def test_in_remote_mode_the_vlm_answers_for_captioners_no_provider_serves():
    from jarvis.execution.coverage import candidates, offered_task_types
    catalog = Catalog([parse_entry({"id": CAPTIONER, "task": "image-to-text", "providers": []})])
    assert [m.id for m in candidates(catalog, "image-to-text", 5, "remote", "Qwen/Qwen2.5-VL-7B-Instruct")] == [CAPTIONER]
    assert candidates(catalog, "image-to-text", 5, "remote", "") == []
    assert "image-to-text" in [t.name for t in offered_task_types(catalog, "remote", "Qwen/Qwen2.5-VL-7B-Instruct")]
    assert "image-to-text" not in [t.name for t in offered_task_types(catalog, "remote", "")]
