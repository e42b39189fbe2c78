"""The LLM client against a scripted OpenAI-compatible server: answers, usage, retries, faults."""
import socket
import time

import pytest

from jarvis.config import load_config
from jarvis.errors import LLMError
from jarvis.llm.client import LLM, Usage
from tests.fakes.llm_server import Fault, ScriptedLLM


def llm_for(url, retries=2, timeout=5.0, key="sk-test"):
    cfg = load_config(env={"OPENAI_BASE_URL": url, "OPENAI_API_KEY": key})
    cfg = cfg.with_overrides(llm={"max_retries": retries, "timeout": timeout})
    return LLM(cfg)


MSG = [{"role": "user", "content": "hi"}]


def test_complete_and_usage():
    with ScriptedLLM(chat="hello there", usage=(11, 3)) as server:
        usage = Usage()
        assert llm_for(server.url).complete(MSG, usage) == "hello there"
        assert usage.as_dict() == {"llm_calls": 1, "prompt_tokens": 11, "completion_tokens": 3}
        assert server.requests[0]["headers"]["authorization"] == "Bearer sk-test"


def test_stream_counts_usage():
    with ScriptedLLM(chat="a streamed answer that is long", usage=(7, 5)) as server:
        usage = Usage()
        text = "".join(llm_for(server.url).stream(MSG, usage))
        assert text == "a streamed answer that is long" and usage.prompt_tokens == 7


def test_retries_429_and_5xx_then_succeeds():
    with ScriptedLLM(chat="ok") as server:
        server.faults = [Fault(429, headers={"retry-after-ms": "10"}), Fault(503, headers={"retry-after-ms": "10"})]
        assert llm_for(server.url, retries=3).complete(MSG, Usage()) == "ok"
        assert len(server.requests) == 3


@pytest.mark.parametrize("status, words", [(401, "rejected the API key"), (404, "not found"),
                                           (429, "rate-limiting"), (500, "failed")])
def test_clear_messages(status, words):
    with ScriptedLLM(key="sk-canary-123") as server:
        server.faults = [Fault(status, headers={"retry-after-ms": "5"}) for _ in range(5)]
        with pytest.raises(LLMError, match=words) as err:
            llm_for(server.url, retries=1, key="sk-canary-123").complete(MSG, Usage())
        assert "sk-canary-123" not in str(err.value)


def test_timeout_is_bounded():
    with ScriptedLLM() as server:
        server.faults = [Fault(200, delay=3.0), Fault(200, delay=3.0)]
        start = time.perf_counter()
        with pytest.raises(LLMError, match="did not answer in time"):
            llm_for(server.url, retries=0, timeout=0.5).complete(MSG, Usage())
        assert time.perf_counter() - start < 3


def test_unreachable_host():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(LLMError, match="cannot reach"):
        llm_for(f"http://127.0.0.1:{port}/v1", retries=0).complete(MSG, Usage())


@pytest.mark.parametrize("body", ["not json", '{"object": "chat.completion"}', '{"choices": []}'])
def test_malformed_body(body):
    with ScriptedLLM() as server:
        server.faults = [Fault(200, body=body)]
        with pytest.raises(LLMError):
            llm_for(server.url, retries=0).complete(MSG, Usage())


def test_azure_openai_uses_the_deployment_route():
    with ScriptedLLM(chat="from azure", usage=(3, 2), key="azure-key", models=["my-deployment"]) as server:
        root = server.url[: -len("/v1")]
        cfg = load_config(env={"OPENAI_API_KEY": "azure-key"}).with_overrides(
            llm={"api_type": "azure", "base_url": root, "model": "my-deployment", "max_retries": 0})
        assert LLM(cfg).complete(MSG, Usage()) == "from azure"
        request = server.requests[0]
        assert request["path"].startswith("/openai/deployments/my-deployment/chat/completions")
        assert "api-version=" in request["path"] and request["headers"].get("api-key") == "azure-key"
