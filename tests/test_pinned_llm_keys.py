"""An upstream that echoes the API key in its error, whatever the status, never gets the key in
front of the user: not in the LLM client's error, not in any event of a run (the scripted LLM
through the real `openai` SDK)."""
from __future__ import annotations

import json

import pytest

from jarvis.config import load_config
from jarvis.errors import LLMError
from jarvis.events import Failed
from jarvis.llm.client import LLM, Usage
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.llm_server import Fault, ScriptedLLM
from tests.helpers import config_for

pytestmark = pytest.mark.timeout(30)
KEY = "sk-canary-5d1e0b7a9c"
STATUSES = [400, 401, 402, 403, 404, 409, 413, 422, 429, 500, 503]
MSG = [{"role": "user", "content": "hi"}]


def echoing(status: int) -> Fault:
    """What careless upstreams send: the key in the message, in a field, and in a nested detail."""
    body = {"error": {"message": f"Incorrect API key provided: {KEY}. Request rejected ({status}).",
                      "type": "invalid_request_error", "param": KEY, "code": f"key={KEY}",
                      "detail": [{"loc": ["header", "authorization"], "input": f"Bearer {KEY}"}]}}
    return Fault(status, body=json.dumps(body), headers={"retry-after-ms": "1"})


def client(url: str) -> LLM:
    cfg = load_config(env={"OPENAI_BASE_URL": url, "OPENAI_API_KEY": KEY})
    return LLM(cfg.with_overrides(llm={"max_retries": 0, "timeout": 10}))


@pytest.mark.parametrize("status", STATUSES)
def test_complete_and_stream_errors_never_carry_the_key(status):
    with ScriptedLLM(chat="unused", key=KEY) as server:
        server.faults = [echoing(status), echoing(status)]
        llm = client(server.url)
        with pytest.raises(LLMError) as completed:
            llm.complete(MSG, Usage())
        with pytest.raises(LLMError) as streamed:
            "".join(llm.stream(MSG, Usage()))
        assert len(server.requests) == 2 and not server.faults     # both calls reached the echoing upstream
    for err in (completed.value, streamed.value):
        assert KEY not in str(err) and KEY not in repr(err.args)
        assert KEY[3:] not in str(err)                            # not even without its "sk-" prefix


@pytest.mark.parametrize("status", STATUSES)
def test_a_run_failing_upstream_shows_no_key_in_any_event(status, tmp_path):
    with ScriptedLLM(plan="[]", chat="unused", key=KEY) as server:
        server.faults = [echoing(status) for _ in range(3)]
        cfg = config_for(server.url, key=KEY)
        controller = Controller(cfg, local=FakeExecutor())
        events = list(controller.run(Session.create(cfg, root=tmp_path / "s"), "hello"))
    failed = [e for e in events if isinstance(e, Failed)]
    assert failed and str(status) in failed[0].message
    shown = json.dumps([e.to_dict() for e in events], default=str)
    assert KEY not in shown and KEY[3:] not in shown
