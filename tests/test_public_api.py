"""The package's public surface: what `import jarvis` promises to programs that embed it."""
from __future__ import annotations

import jarvis

EXPECTED = {
    "TASK_TYPES", "AnswerDelta", "Attempt", "Catalog", "Config", "Controller", "Done", "Event", "Failed",
    "JarvisError", "ModelChosen", "ModelInfo", "PlanReady", "RunResult", "Session", "TaskFailed", "TaskFinished",
    "TaskProgress", "TaskRecord", "TaskSkipped", "TaskStarted", "__version__", "load_config",
}


def test_public_surface_is_pinned():
    assert set(jarvis.__all__) == EXPECTED
    for name in jarvis.__all__:
        assert getattr(jarvis, name) is not None, name


def test_events_and_records_are_the_ones_the_controller_emits():
    from jarvis.events import Done as DoneEvent
    from jarvis.pipeline.records import RunResult as Result
    assert jarvis.Done is DoneEvent and jarvis.RunResult is Result
    assert issubclass(jarvis.TaskFinished, jarvis.Event)


def test_embedding_program_can_run_a_chat_turn_without_a_plan(tmp_path):
    """A program using only the public names gets a streamed answer from an OpenAI-compatible server."""
    from tests.fakes.llm_server import ScriptedLLM

    with ScriptedLLM() as llm:
        llm.script["plan"] = "[]"
        llm.script["chat"] = "Hello from the scripted LLM."
        config = jarvis.load_config(env={"OPENAI_BASE_URL": llm.url, "OPENAI_API_KEY": "sk-test"})
        controller = jarvis.Controller(config)
        session = jarvis.Session.create(config, root=tmp_path)
        try:
            events = list(controller.run(session, "hi"))
        finally:
            session.close()
            controller.close()
    done = [e for e in events if isinstance(e, jarvis.Done)]
    assert done and isinstance(done[0].result, jarvis.RunResult)
    assert "".join(e.text for e in events if isinstance(e, jarvis.AnswerDelta)) == "Hello from the scripted LLM."
