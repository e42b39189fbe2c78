"""Remote and hybrid modes end to end through the controller: scripted LLM, loopback inference service."""
import pytest

from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.inference_server import InferenceServer
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json, run_to_end
from tests.test_controller import pick_top

PLAN = plan_json(("text-to-image", {"text": "a red square"}),
                 ("image-classification", {"image": "<GENERATED>-0"}, [0]),
                 ("text-classification", {"text": "what a day"}))


@pytest.fixture()
def service():
    with InferenceServer(token="hf_remote_test") as srv:
        yield srv


def run_mode(mode, service, tmp_path, select=pick_top, catalog=""):
    with ScriptedLLM(plan=PLAN, select=select, answer="All done.") as llm:
        cfg = config_for(llm.url, inference={"mode": mode}, catalog={"path": catalog},
                         remote={"base_url": service.url, "timeout": 10, "max_retries": 1},
                         credentials={"hf_token": "hf_remote_test"})
        controller = Controller(cfg)
        session = Session.create(cfg, root=tmp_path / mode)
        _, result, failed = run_to_end(controller, session, "draw, classify, and judge")
        llm_headers = [r["headers"].get("authorization") for r in llm.requests]
    assert failed is None
    return result, llm_headers


def test_three_task_types_in_remote_mode(service, tmp_path):
    result, llm_headers = run_mode("remote", service, tmp_path)
    tasks = {t.id: t for t in result.tasks}
    assert all(t.status == "done" and t.executor == "remote" for t in tasks.values()), tasks
    assert tasks[0].outputs["image"].endswith(".png") and tasks[1].outputs["text"]
    # the HF token went to the inference service only; the LLM got the OpenAI key
    assert all(r.headers.get("authorization") == "Bearer hf_remote_test" for r in service.requests)
    assert all(h == "Bearer sk-test" for h in llm_headers)


def test_hybrid_with_a_failing_remote_model_uses_the_next_candidate(service, tmp_path):
    """Painters that are not cached here run remotely; the first answers 503 until retries run out."""
    import json

    from jarvis.catalog.entries import Catalog
    first, second = "example-org/painter-a", "example-org/painter-b"
    entries = [m.to_json() for m in Catalog.load() if m.task != "text-to-image"]
    entries += [{"id": first, "task": "text-to-image", "downloads": 20, "description": "paints"},
                {"id": second, "task": "text-to-image", "downloads": 10, "description": "paints too"}]
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps(e) for e in entries))
    service.models.update({first: "text-to-image", second: "text-to-image"})
    service.fault(first, "503", estimated_time=0.01)
    result, _ = run_mode("hybrid", service, tmp_path, catalog=str(catalog))
    image_task = result.tasks[0]
    assert image_task.status == "done" and image_task.model == second
    assert image_task.attempts[0].model == first and not image_task.attempts[0].ok
    assert image_task.executor == "remote"
    assert all(t.status == "done" for t in result.tasks)
