"""The HTTP API end to end: uvicorn on 127.0.0.1, the real `openai` SDK and plain httpx as clients,
the scripted LLM and tiny real models behind it. Nothing in jarvis is patched."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from jarvis.frontends.http.app import API_PREFIXES, create_app
from jarvis.frontends.http.auth import endpoint_refusal
from jarvis.frontends.mcp.server import MCP_PATH
from jarvis.pipeline.controller import Controller
from tests.fakes.llm_server import ScriptedLLM
from tests.fakes.loopback import UvicornThread
from tests.helpers import config_for, plan_json

ROOT = Path(__file__).resolve().parent.parent
SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
TTS = "facebook/mms-tts-eng"  # on a CPU the catalog offers the light one first (local.cpu_prefer_under_gb)
TOKENS = "tok-alice,tok-bob"


class Live(UvicornThread):
    """A uvicorn server for one app on a free loopback port, in a thread."""

    def __init__(self, app):
        super().__init__(lambda port: uvicorn.Config(app, log_level="warning", lifespan="on"),
                         what="the API server")


@pytest.fixture(scope="module")
def controller(tiny_models):
    return Controller(config_for("http://127.0.0.1:9/v1"))


def api_for(controller, llm: ScriptedLLM, key: str = "sk-server", **server) -> Live:
    server.setdefault("access_token", TOKENS)
    timeout = server.pop("request_timeout", None)
    private = server.pop("allow_private_endpoints", None)
    llm.keys.add(key)     # the scripted LLM is the server's endpoint: it takes the server's key
    cfg = config_for(llm.url, key=key, server=server)
    return Live(create_app(cfg, controller, request_timeout=timeout, allow_private_endpoints=private))


def client(live: Live, token: str = "tok-alice", **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=token, max_retries=0, timeout=120, **kw)


def png_data_url(size: int = 32, noise: bool = False) -> str:
    import numpy as np
    from PIL import Image
    buf = io.BytesIO()
    if noise:  # incompressible: the PNG is about size*size*3 bytes
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    else:
        Image.new("RGB", (size, size), (200, 30, 30)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def answer_naming_files(messages) -> str:
    """An answer step that names every generated file it was told about, as a real LLM would."""
    names = re.findall(r'"(?:audio|image|video)":"([^"]+)"', messages[-1]["content"])
    return "Done. Files: " + ", ".join(names) if names else "Done."


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- OpenAI-compatible ------------------------------------------------------------------------
def test_models_and_access_tokens(controller):
    with ScriptedLLM() as llm, api_for(controller, llm) as live:
        assert [m.id for m in client(live).models.list()] == ["jarvis"]
        assert client(live, "tok-bob").models.retrieve("jarvis").id == "jarvis"
        with pytest.raises(openai.AuthenticationError):
            client(live, "tok-wrong").models.list()
        r = httpx.get(f"{live.url}/v1/models")
        assert r.status_code == 401 and "access token is missing" in r.json()["error"]["message"]
        r = httpx.post(f"{live.url}/hugginggpt", json={"messages": []}, headers=auth("nope"))
        assert r.status_code == 401 and "not valid" in r.json()["error"]
        assert llm.requests == []


def test_openai_multistep_with_image_and_generated_file(controller):
    plan = plan_json(("image-classification", {"image": "image-1.png"}),
                     ("text-to-speech", {"text": "hello world"}))
    with ScriptedLLM(plan=plan, answer="Classified the image and spoke the text.", usage=(10, 5)) as llm, \
            api_for(controller, llm) as live:
        resp = client(live).chat.completions.create(model="jarvis", messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "What is in this image? Then say hello world."},
                                         {"type": "image_url", "image_url": {"url": png_data_url()}}]}])
        content = resp.choices[0].message.content
        extra = resp.model_extra["jarvis"]
        tasks = {t["id"]: t for t in extra["tasks"]}
        assert all(t["status"] == "done" for t in tasks.values()), [t["error"] for t in tasks.values()]
        assert tasks[1]["model"] == TTS and tasks[0]["outputs"]["text"]
        assert content.startswith("Classified the image and spoke the text.")
        link = re.search(r"\((http://127\.0\.0\.1:\d+/files/[\w-]+/[\w.-]+\.wav)\)", content).group(1)
        assert tasks[1]["outputs"]["audio"] == link and "/tmp" not in json.dumps(extra)
        # the planner saw the attached image by name
        plan_call = next(r for r in llm.requests if "You are the planner" in r["json"]["messages"][0]["content"])
        assert "(attached: image-1" in plan_call["json"]["messages"][-1]["content"]
        # usage: every LLM call's tokens
        calls = len(llm.requests)
        assert extra["llm_calls"] == calls
        assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == \
            (10 * calls, 5 * calls, 15 * calls)
        # the link downloads for its owner only
        r = httpx.get(link, headers=auth("tok-alice"))
        assert r.status_code == 200 and r.content[:4] == b"RIFF" and r.headers["content-type"].startswith("audio/")
        for headers in (auth("tok-bob"), {}, auth("tok-wrong")):
            r = httpx.get(link, headers=headers)
            assert r.status_code == 404 and r.json()["error"]
        token = link.split("/files/")[1].split("/")[0]
        for bad in (link.replace(token, "A" * len(token)), link.rsplit("/", 1)[0] + "/..%2F..%2Fetc%2Fpasswd",
                    link.rsplit("/", 1)[0] + "/image-1.png"):
            assert httpx.get(bad, headers=auth("tok-alice")).status_code == 404


def test_streaming_shows_steps_before_the_answer(controller):
    plan = plan_json(("text-classification", {"text": "I love this film"}))
    with ScriptedLLM(plan=plan, answer="It is a positive review.", usage=(7, 3)) as llm, \
            api_for(controller, llm) as live:
        stream = client(live).chat.completions.create(
            model="jarvis", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Is 'I love this film' positive?"}])
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("<think>\n")
        steps, answer = text.split("</think>")
        assert "\nPlan: 1 task(s)\n" in steps
        assert f"model {SST2}" in steps and "Task 0 done" in steps
        assert answer.strip() == "It is a positive review."
        assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 7 * len(llm.requests)
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        # the same steps as reasoning_content, for clients that show a model's reasoning apart
        stream = client(live, default_headers={"X-Jarvis-Steps": "reasoning"}).chat.completions.create(
            model="jarvis", stream=True, messages=[{"role": "user", "content": "Is it positive?"}])
        chunks = list(stream)
        reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                            for c in chunks if c.choices)
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "Plan: 1 task(s)" in reasoning and content == "It is a positive review."


def test_conversation_history_reaches_the_planner(controller):
    with ScriptedLLM(plan="[]", chat="Sure.") as llm, api_for(controller, llm) as live:
        resp = client(live).chat.completions.create(model="jarvis", messages=[
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "<think>\nPlan: 1 task(s)\n</think>\n\nHello Ada."},
            {"role": "user", "content": "What is my name?"}])
        assert resp.choices[0].message.content == "Sure."
        planner = llm.requests[0]["json"]["messages"]
        assert [m["content"] for m in planner[1:]] == ["My name is Ada.", "Hello Ada.", "What is my name?"]


# -- HuggingGPT-compatible --------------------------------------------------------------------
def test_hugginggpt_routes(controller):
    plan = plan_json(("text-classification", {"text": "what a lovely day"}),
                     ("text-to-speech", {"text": "what a lovely day"}))
    with ScriptedLLM(plan=plan, answer=answer_naming_files) as llm, api_for(controller, llm) as live:
        body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Classify and read aloud: "
                                                                                   "what a lovely day"}]}
        r = httpx.post(f"{live.url}/tasks", json=body, headers=auth("tok-alice"), timeout=120)
        assert r.status_code == 200, r.text
        assert [(t["id"], t["task"], t["dep"]) for t in r.json()] == [(0, "text-classification", [-1]),
                                                                      (1, "text-to-speech", [-1])]
        assert llm.kinds() == ["plan"]

        r = httpx.post(f"{live.url}/results", json=body, headers=auth("tok-alice"), timeout=120)
        results = r.json()
        assert set(results) == {"0", "1"} and "answer" not in llm.kinds()
        first = results["0"]
        assert first["task"]["task"] == "text-classification"
        assert first["choose model result"]["id"] == SST2 and first["choose model result"]["reason"]
        assert first["inference result"]["generated text"] and first["inference result"]["predicted"]
        audio_url = results["1"]["inference result"]["generated audio"]
        assert httpx.get(audio_url, headers=auth("tok-alice")).status_code == 200

        r = httpx.post(f"{live.url}/hugginggpt", json=body, headers=auth("tok-alice"), timeout=120)
        message = r.json()["message"]
        assert list(r.json()) == ["message"] and message.startswith("Done. Files: http://127.0.0.1")
        url = re.search(r"http://\S+\.wav", message).group(0)
        assert httpx.get(url, headers=auth("tok-alice")).content[:4] == b"RIFF"


def test_hugginggpt_chat_and_body_credentials(controller):
    with ScriptedLLM(plan="[]", chat="Hi there!") as server_llm, ScriptedLLM(plan="[]", chat="Own key.", key="sk-own") as own, \
            api_for(controller, server_llm) as live:
        r = httpx.post(f"{live.url}/hugginggpt", json={"messages": [{"role": "user", "content": "hello"}]},
                       headers=auth("tok-bob"), timeout=60)
        assert r.json() == {"message": "Hi there!"}
        assert r.status_code == 200 and server_llm.requests[0]["headers"]["authorization"] == "Bearer sk-server"
        body = {"messages": [{"role": "user", "content": "hello"}], "api_key": "sk-own",
                "api_endpoint": f"{own.url}/chat/completions", "api_type": "openai"}
        r = httpx.post(f"{live.url}/tasks", json=body, headers=auth("tok-bob"), timeout=60)
        assert r.json() == {"message": "Own key."}
        assert {q["headers"]["authorization"] for q in own.requests} == {"Bearer sk-own"}
        del body["api_key"]
        r = httpx.post(f"{live.url}/hugginggpt", json=body, headers=auth("tok-bob"), timeout=60)
        assert r.status_code == 400 and "must bring its own key" in r.json()["error"]
        assert len(server_llm.requests) == 2


# -- credentials ------------------------------------------------------------------------------
def test_two_clients_at_once_each_with_its_own_key(controller):
    plan = plan_json(("text-classification", {"text": "good"}))
    with ScriptedLLM(answer="unused", key="sk-ccc") as server_llm, \
            ScriptedLLM(plan=plan, answer="A's answer", delay=0.5, key="sk-aaa") as llm_a, \
            ScriptedLLM(plan=plan, answer="B's answer", delay=0.5, key="sk-bbb") as llm_b, \
            api_for(controller, server_llm) as live:
        answers = {}

        def ask(name, llm, key):
            c = client(live, default_headers={"X-LLM-Base-URL": llm.url, "X-OpenAI-Api-Key": key})
            answers[name] = c.chat.completions.create(
                model="jarvis", messages=[{"role": "user", "content": f"request of {name}"}]).choices[0].message.content

        threads = [threading.Thread(target=ask, args=("a", llm_a, "sk-aaa")),
                   threading.Thread(target=ask, args=("b", llm_b, "sk-bbb"))]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.perf_counter() - started
        assert answers == {"a": "A's answer", "b": "B's answer"}
        assert {r["headers"]["authorization"] for r in llm_a.requests} == {"Bearer sk-aaa"}
        assert {r["headers"]["authorization"] for r in llm_b.requests} == {"Bearer sk-bbb"}
        assert server_llm.requests == []
        assert elapsed < 0.5 * (len(llm_a.requests) + len(llm_b.requests)), "the two requests did not overlap"
        # a request's own key without an endpoint goes to the server's endpoint, never with the server key
        client(live, default_headers={"X-OpenAI-Api-Key": "sk-ccc"}).chat.completions.create(
            model="jarvis", messages=[{"role": "user", "content": "third"}])
        assert {r["headers"]["authorization"] for r in server_llm.requests} == {"Bearer sk-ccc"}


def test_caller_named_endpoints_must_be_public():
    assert "link-local" in endpoint_refusal("http://169.254.169.254/latest")
    assert "private" in endpoint_refusal("http://10.1.2.3:8000/v1")
    assert "loopback" in endpoint_refusal("http://127.0.0.1:8000/v1")
    assert endpoint_refusal("https://8.8.8.8/v1") is None


def test_private_endpoint_refused_when_not_allowed(controller):
    with ScriptedLLM() as server_llm, ScriptedLLM() as other, \
            api_for(controller, server_llm, allow_private_endpoints=False) as live:
        r = httpx.post(f"{live.url}/v1/chat/completions", headers={**auth("tok-alice"), "X-LLM-Base-URL": other.url,
                                                                   "X-OpenAI-Api-Key": "sk-x"},
                       json={"model": "jarvis", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "endpoint_refused"
        assert other.requests == [] and server_llm.requests == []


# -- limits and bad requests ------------------------------------------------------------------
def test_bad_requests_get_json_errors(controller):
    with ScriptedLLM() as llm, api_for(controller, llm, max_body_mb=0.05, max_files=2) as live:
        url = f"{live.url}/v1/chat/completions"
        h = auth("tok-alice")
        user = lambda content: {"model": "jarvis", "messages": [{"role": "user", "content": content}]}
        img = {"type": "image_url", "image_url": {"url": png_data_url(8)}}
        cases = [
            (httpx.post(url, content=b"{not json", headers={**h, "Content-Type": "application/json"}), 400, "JSON"),
            (httpx.post(url, content=b"hello", headers={**h, "Content-Type": "text/plain"}), 415, "application/json"),
            (httpx.post(url, json=[1, 2], headers=h), 400, "JSON object"),
            (httpx.post(url, json={"model": "jarvis"}, headers=h), 400, "messages"),
            (httpx.post(url, json={"messages": [{"role": "assistant", "content": "x"}]}, headers=h), 400, "no user"),
            (httpx.post(url, json=user("  "), headers=h), 400, "empty"),
            (httpx.post(url, json=user([{"type": "video_url", "video_url": "x"}]), headers=h), 400, "unsupported"),
            (httpx.post(url, json=user([{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!"}}]),
                        headers=h), 400, "base64"),
            (httpx.post(url, json=user([{"type": "image_url", "image_url": {"url": "data:text/html;base64,PGI+"}}]),
                        headers=h), 400, "not an image"),
            (httpx.post(url, json=user([{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]),
                        headers=h), 400, "http(s)"),
            (httpx.post(url, json=user([{"type": "text", "text": "x"}, img, img, img]), headers=h), 400, "too many"),
            (httpx.post(url, json=user("x"), headers={**h, "X-LLM-Base-URL": "http://127.0.0.1:9/v1"}), 400,
             "own key"),
            (httpx.post(url, json={**user("x"), "stream": "yes"}, headers=h), 400, "stream"),
            (httpx.post(url, json=user("x" * 60_000), headers=h), 413, "larger than"),
            (httpx.get(f"{live.url}/v1/nothing", headers=h), 404, "no such route"),
            (httpx.get(url, headers=h), 405, "not allowed"),
            (httpx.post(f"{live.url}/tasks", json={"messages": "hi"}, headers=h), 400, "messages"),
            (httpx.post(f"{live.url}/results", json={"messages": [{"role": "user", "content": "x"}],
                                                      "api_type": "azure"}, headers=h), 400, "azure"),
        ]
        for response, status, words in cases:
            assert response.status_code == status, (words, response.text)
            body = response.json()
            message = body["error"]["message"] if isinstance(body["error"], dict) else body["error"]
            assert words in message, (words, message)
            assert "Traceback" not in response.text
        # a body without Content-Length (chunked) is cut off at the limit too
        def chunks():
            yield b'{"messages": [{"role": "user", "content": "'
            for _ in range(40):
                yield b"x" * 4096
            yield b'"}]}'
        r = httpx.post(url, content=chunks(), headers={**h, "Content-Type": "application/json"})
        assert r.status_code == 413
        # the SDK sees an oversize upload as a 413 error with the message
        big = {"type": "image_url", "image_url": {"url": png_data_url(256, noise=True)}}
        with pytest.raises(openai.APIStatusError) as info:
            client(live).chat.completions.create(model="jarvis", messages=[{"role": "user", "content": [big]}])
        assert info.value.status_code == 413
        assert llm.requests == []


def test_llm_failure_is_a_json_error_not_a_traceback(controller):
    with ScriptedLLM() as llm, Live(create_app(config_for("http://127.0.0.1:9/v1", key="sk-x"), controller)) as live:
        r = httpx.post(f"{live.url}/v1/chat/completions", timeout=60,
                       json={"model": "jarvis", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 502 and "cannot reach" in r.json()["error"]["message"]
        with pytest.raises(openai.APIStatusError) as info:
            client(live).chat.completions.create(model="jarvis", stream=True,
                                                 messages=[{"role": "user", "content": "hi"}])
        assert info.value.status_code == 502
    assert llm.requests == []


def test_time_limit_and_file_expiry(controller):
    plan = plan_json(("text-to-speech", {"text": "hi"}))
    with ScriptedLLM(plan="[]", chat="late", delay=1.5) as slow, \
            api_for(controller, slow, request_timeout=0.5) as live:
        resp = client(live).chat.completions.create(model="jarvis", messages=[{"role": "user", "content": "hi"}])
        assert "time limit of 0.5 s" in resp.choices[0].message.content and resp.model_extra["jarvis"]["timed_out"]
    with ScriptedLLM(plan=plan, answer="ok") as llm, api_for(controller, llm, file_ttl=1) as live:
        resp = client(live).chat.completions.create(model="jarvis", messages=[{"role": "user", "content": "say hi"}])
        link = resp.model_extra["jarvis"]["files"][0]["url"]
        assert httpx.get(link, headers=auth("tok-alice")).status_code == 200
        time.sleep(1.3)
        assert httpx.get(link, headers=auth("tok-alice")).status_code == 404


# -- mounting and the command line -------------------------------------------------------------
def test_routes_leave_room_for_the_web_ui(controller):
    import gradio as gr

    with ScriptedLLM() as llm:
        app = create_app(config_for(llm.url, server={"access_token": ""}), controller)
        paths = [r.path for r in app.routes if getattr(r, "path", None)] + list(app.openapi()["paths"])
        assert "/v1/chat/completions" in paths and "/hugginggpt" in paths
        # and MCP at Gradio's own MCP path (Gradio's MCP server stays off: jarvis.frontends.mcp.server)
        assert all(p.startswith(API_PREFIXES) or p.rstrip("/") == MCP_PATH for p in paths), paths
        with gr.Blocks() as blocks:
            gr.Markdown("Jarvis")
        app = gr.mount_gradio_app(app, blocks, path="/")
        with Live(app) as live:
            assert httpx.get(f"{live.url}/v1/models").json()["data"][0]["id"] == "jarvis"
            page = httpx.get(f"{live.url}/")
            assert page.status_code == 200 and "<html" in page.text.lower()


def test_serve_command(tiny_models):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-x"}
    proc = subprocess.Popen([sys.executable, "-m", "jarvis", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() else "timeout"
                time.sleep(0.2)
        assert r.json()["data"][0]["id"] == "jarvis"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert f"http://127.0.0.1:{port}/v1" in out and "Traceback" not in out


def test_cors_only_when_asked_and_only_for_api_paths(controller):
    with ScriptedLLM() as llm:
        cfg = config_for(llm.url, server={"access_token": TOKENS})
        preflight = {"Origin": "http://client.example", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type"}
        with Live(create_app(cfg, controller)) as live:
            r = httpx.options(f"{live.url}/hugginggpt", headers=preflight)
            assert "access-control-allow-origin" not in r.headers
        with Live(create_app(cfg, controller, cors_origins=["http://client.example"])) as live:
            r = httpx.options(f"{live.url}/hugginggpt", headers=preflight)
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://client.example"
