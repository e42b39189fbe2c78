"""The HTTP API's access tokens match exactly: a prefix, an extension, another case or another
scheme of a token is refused, for the API and for another user's files (uvicorn on 127.0.0.1,
the scripted LLM behind it, a FakeExecutor writing the audio file)."""
from __future__ import annotations

import re

import httpx
import numpy as np
import pytest
import soundfile as sf

from jarvis.catalog.entries import Catalog
from jarvis.frontends.http.app import create_app
from jarvis.frontends.http.auth import match_token
from jarvis.pipeline.controller import Controller
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json
from tests.test_server import Live

pytestmark = pytest.mark.timeout(60)
ALICE, BOB = "tok-alice-7f3a", "tok-bob-19c2"
NEAR_ALICE = ["t", "tok", "tok-", "tok-alice", "tok-alice-7f3", "tok-alice-7f3a0", "tok-alice-7f3a ",
              "TOK-ALICE-7F3A", "ok-alice-7f3a", "tok-alice-7f3a,tok-bob-19c2", f"{ALICE}{BOB}"]


@pytest.mark.parametrize("given", NEAR_ALICE)
def test_only_the_exact_token_matches(given):
    tokens = [ALICE, BOB]
    refused = match_token(f"Bearer {given}", tokens)
    assert refused is None or given.strip() == ALICE
    assert match_token(f"Bearer {ALICE}", tokens) not in (None, match_token(f"Bearer {BOB}", tokens))
    for header in (ALICE, f"Basic {ALICE}", f"Token {ALICE}", "Bearer", "Bearer ", ""):
        assert match_token(header, tokens) is None, header
    assert match_token("", []) == "" and match_token("Bearer anything", []) == ""


def speak(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    path = ctx.new_file("speech", ".wav")
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")
    return TaskOutputs(audio=path, detail={"model": model_id})


def test_a_near_token_neither_calls_the_api_nor_downloads_anothers_file():
    plan = plan_json(("text-to-speech", {"text": "hello"}))
    with ScriptedLLM(plan=plan, answer="Here is the audio.", key="sk-server") as llm:
        cfg = config_for(llm.url, key="sk-server", server={"access_token": f"{ALICE},{BOB}"})
        controller = Controller(cfg, Catalog.load(), local=FakeExecutor(speak))
        with Live(create_app(cfg, controller)) as live:
            r = httpx.post(f"{live.url}/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {ALICE}"},
                           json={"model": "jarvis", "messages": [{"role": "user", "content": "say hello"}]})
            assert r.status_code == 200, r.text
            link = re.search(r"(http://127\.0\.0\.1:\d+/files/[\w-]+/[\w.-]+\.wav)", r.json()["choices"][0]
                             ["message"]["content"]).group(1)
            assert httpx.get(link, headers={"Authorization": f"Bearer {ALICE}"}).status_code == 200
            calls = len(llm.requests)
            for given in NEAR_ALICE:
                if given.strip() == ALICE:
                    continue
                headers = {"Authorization": f"Bearer {given}"}
                assert httpx.get(link, headers=headers).status_code == 404, given
                assert httpx.get(f"{live.url}/v1/models", headers=headers).status_code == 401, given
            assert httpx.get(link, headers={"Authorization": f"Bearer {BOB}"}).status_code == 404
            assert len(llm.requests) == calls          # nothing refused reached the LLM
