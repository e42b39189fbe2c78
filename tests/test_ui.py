"""The web app, launched in-process and driven through gradio_client, with the scripted LLM server
and tiny local models: steps, answer and media come back; sessions keep their keys, history and
files apart; errors become chat messages and the app keeps serving."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from jarvis.config import Config
from tests.fakes.llm_server import ScriptedLLM
from tests.uiapp import UI_MODELS, ensure_models, running_app, write_catalog

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STREET = EXAMPLES / "street.png"
SHAPES = EXAMPLES / "shapes-a.png"
CAPTION_SPEAK = json.dumps([{"task": "image-to-text", "id": 0, "dep": [-1], "args": {"image": "street.png"}},
                            {"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}}])

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return write_catalog(tmp_path_factory.mktemp("ui") / "catalog.jsonl")


@pytest.fixture(scope="module")
def models(hub_cache):
    ensure_models(hub_cache, UI_MODELS)


def make_config(catalog: Path, base_url: str = "", **llm) -> Config:
    return Config().with_overrides(llm={"base_url": base_url, "model": "scripted", "max_retries": 0, **llm},
                                   catalog={"path": str(catalog)}, local={"device": "cpu"})


def client(url: str):
    from gradio_client import Client
    return Client(url, verbose=False, download_files=False)


def ask(c, text: str, files=(), key="", base_url="", model="scripted", mode="local", hf=""):
    from gradio_client import handle_file
    job = c.submit({"text": text, "files": [handle_file(str(f)) for f in files]}, key, hf, base_url, model, mode,
                   api_name="/chat")
    chat, box, resources = job.result()
    return chat, resources, job.outputs()


def texts(chat) -> list[str]:
    return [part["text"] for m in chat for part in m["content"] if part.get("type") == "text"]


def file_parts(chat, role="assistant") -> list[dict]:
    return [part["file"] for m in chat if m["role"] == role for part in m["content"] if part.get("type") == "file"]


def test_importing_the_ui_does_not_import_torch():
    code = ("import sys, jarvis.frontends.web.app; "
            "print(sorted(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_page_opens_without_credentials_and_says_which_llm_answers(catalog):
    with running_app(make_config(catalog)) as (url, demo):
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            assert "Jarvis" in resp.read().decode("utf-8", "replace")
        status = client(url).predict("", "", "", "", "local", api_name="/status")
        # no key, no server: the embedded LLM answers, and the status says how to use a larger one
        assert "runs inside Jarvis" in status and "OpenAI API key" in status and "Hugging Face token" in status
        typed = client(url).predict("sk-typed", "", "", "", "local", api_name="/status")
        assert "your OpenAI key" in typed and "api.openai.com" in typed


def test_caption_then_speak_shows_steps_answer_and_audio(catalog, models):
    import soundfile as sf
    with ScriptedLLM(plan=CAPTION_SPEAK, answer="The picture shows a house. Listen to the audio.", key="sk-a") as llm, \
            running_app(make_config(catalog, llm.url)) as (url, demo):
        chat, resources, outputs = ask(client(url), "Caption this and read it aloud", [STREET], key="sk-a")
        audio = [f for f in file_parts(chat) if f["path"].endswith(".wav")]
        assert len(audio) == 1 and audio[0]["url"]
        with urllib.request.urlopen(audio[0]["url"], timeout=10) as resp:    # served to the browser
            data, rate = sf.read(io.BytesIO(resp.read()))
        assert rate > 0 and len(data) > 0
    # the user's turn shows the attached photo
    assert chat[0] == {"role": "user", "metadata": None, "options": None,
                       "content": [{"type": "text", "text": "Caption this and read it aloud"}]}
    assert Path(file_parts(chat, "user")[0]["path"]).name == "street.png"
    # the plan, readable, and one collapsible step per task, done, with a duration
    steps = [m for m in chat if m["metadata"] and m["metadata"].get("title")]
    assert steps[0]["metadata"]["title"].endswith("Plan: 2 tasks") and steps[0]["metadata"]["status"] == "done"
    plan_text = steps[0]["content"][0]["text"]
    assert "**image-to-text** on image `street.png`" in plan_text and "output of task 0" in plan_text
    assert "{" not in plan_text
    tasks = [s for s in steps if s["metadata"].get("id", "").startswith("task-")]
    assert [s["metadata"]["status"] for s in tasks] == ["done", "done"]
    assert all(isinstance(s["metadata"]["duration"], float) for s in tasks)
    assert "nlpconnect/vit-gpt2-image-captioning" in tasks[0]["metadata"]["title"]
    assert "only candidate" in tasks[0]["content"][0]["text"]          # why this model
    assert "**Result:**" in tasks[0]["content"][0]["text"]
    # the answer, then the audio inline
    assert "The picture shows a house. Listen to the audio." in texts(chat)
    # steps were shown while pending (live), and the resources panel names both files
    assert any(m["metadata"] and m["metadata"].get("status") == "pending" for out in outputs for m in out[0])
    assert "`street.png`" in resources and "| audio | generated |" in resources
    assert all(r["headers"].get("authorization") == "Bearer sk-a" for r in llm.requests)


def test_errors_become_chat_messages_and_the_app_keeps_serving(catalog, models):
    missing = json.dumps([{"task": "image-to-text", "id": 0, "dep": [-1], "args": {"image": "nothere.png"}}])
    with ScriptedLLM(plan="[]", chat="Hello again!", key="sk-a") as llm, \
            running_app(make_config(catalog, llm.url)) as (url, demo):
        c = client(url)
        chat, _, _ = ask(c, "hi", key="sk-bad")      # the scripted LLM takes sk-a only: 401
        last = chat[-1]["content"][0]["text"]
        assert "Could not answer" in last and "rejected the API key" in last and "Keys" in last
        chat, _, _ = ask(c, "hi", key="sk-a", base_url="http://127.0.0.1:9/v1")
        assert "Cannot reach the LLM endpoint 127.0.0.1:9" in chat[-1]["content"][0]["text"]
        llm.script["plan"] = missing
        llm.script["answer"] = "I could not read that file."
        chat, _, _ = ask(c, "caption nothere.png", key="sk-a")
        failed = [m for m in chat if m["metadata"] and "failed" in m["metadata"].get("title", "")]
        assert failed and "nothere.png" in failed[0]["content"][0]["text"]
        llm.script["plan"] = "[]"
        chat, _, _ = ask(c, "still there?", key="sk-a")
        assert chat[-2]["content"][0]["text"] == "Hello again!"
        assert len([m for m in chat if m["role"] == "user"]) == 4     # one chat kept every turn


def test_two_sessions_keep_keys_history_and_files_apart(catalog):
    with ScriptedLLM(plan="[]", chat="Answer A", key="sk-alpha") as llm_a, \
            ScriptedLLM(plan="[]", chat="Answer B", delay=0.2, key="sk-bravo") as llm_b, \
            running_app(make_config(catalog, llm_a.url)) as (url, demo):
        a, b = client(url), client(url)
        results = {}

        def turn(name, c, text, files, key, base):
            results[name] = ask(c, text, files, key=key, base_url=base, mode="remote")

        threads = [threading.Thread(target=turn, args=("a", a, "alpha request", [STREET], "sk-alpha", llm_a.url)),
                   threading.Thread(target=turn, args=("b", b, "bravo request", [SHAPES], "sk-bravo", llm_b.url))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        chat_a, res_a, _ = results["a"]
        chat_b, res_b, _ = results["b"]
        assert "`street.png`" in res_a and "shapes-a.png" not in res_a
        assert "`shapes-a.png`" in res_b and "street.png" not in res_b
        assert "Answer A" in texts(chat_a) and not any("bravo" in t or "Answer B" in t for t in texts(chat_a))
        assert "Answer B" in texts(chat_b) and not any("alpha" in t for t in texts(chat_b))
        # a second turn: the planner sees this session's history only
        chat_a, _, _ = ask(a, "and again", key="sk-alpha", base_url=llm_a.url, mode="remote")
        last_plan = json.dumps(llm_a.requests[-2]["json"]["messages"])
        assert "alpha request" in last_plan and "bravo" not in last_plan
    assert {r["headers"].get("authorization") for r in llm_a.requests} == {"Bearer sk-alpha"}
    assert {r["headers"].get("authorization") for r in llm_b.requests} == {"Bearer sk-bravo"}
    assert not any("alpha" in json.dumps(r["json"]) for r in llm_b.requests)


def test_clear_stop_and_expiry_remove_session_files(catalog):
    with ScriptedLLM(plan="[]", chat="ok", key="sk-a") as llm, running_app(make_config(catalog, llm.url)) as (url, demo):
        library = demo.jarvis_library
        c = client(url)
        ask(c, "keep this", [STREET], key="sk-a")
        (conversation,) = library.registry.keys()
        session = library.registry.peek(conversation).session
        uploaded = session.store.list()[0].path
        assert uploaded.is_file()
        chat, resources = c.predict(api_name="/clear")
        assert chat == [] and "No files yet" in resources and not uploaded.exists()
        # stop: the scheduler skips the planned task, the chat says so
        llm.script["plan"] = CAPTION_SPEAK
        llm.delay = 1.0
        job = c.submit({"text": "caption", "files": []}, "sk-a", "", "", "scripted", "local", api_name="/chat")
        time.sleep(0.5)
        c.predict(api_name="/stop")
        chat, _, _ = job.result()
        assert any("stopped by the user" in t.lower() for t in texts(chat))
        llm.delay = 0.0
        llm.script["plan"] = "[]"
        # expiry: an idle conversation's rows and directory are deleted
        ask(c, "again", [STREET], key="sk-a")
        root = library.registry.peek(conversation).session.store.root
        assert any(root.iterdir()) and library.store.turns(conversation)
        assert library.expire(now=time.time() + library.ttl + 1) == 1
        assert not root.exists() and library.registry.peek(conversation) is None
        assert library.store.turns(conversation) == [] and library.store.idle_since(time.time() + 1) == []


def test_server_secret_is_not_sent_to_a_typed_base_url():
    from jarvis.config import Credentials
    from jarvis.frontends.web.credentials import resolve
    base = Config()
    base.credentials = Credentials(openai_api_key="sk-server", hf_token="hf_server")
    same = resolve(base, "", "", "", "", "local", None)
    assert same.config.credentials.openai_api_key == "sk-server" and same.openai_from == "environment"
    other = resolve(base, "", "", "https://evil.example/v1", "", "local", None)
    assert other.config.credentials.openai_api_key == "" and other.openai_from == ""
    signed = resolve(base, "", "", "", "", "remote", "hf_oauth")
    assert signed.config.credentials.hf_token == "hf_oauth" and signed.hf_from == "sign-in"
    typed = resolve(base, "sk-mine", "hf_mine", "https://evil.example/v1", "", "hybrid", "hf_oauth")
    assert typed.config.credentials.openai_api_key == "sk-mine" and typed.config.credentials.hf_token == "hf_mine"
