"""The web app (Gradio 6): chat in the browser with live steps, inline media, per-session keys and
files, ready for a Hugging Face Space. It only maps the controller's events to chat messages.

`launch(config)` serves it with the HTTP API of jarvis.frontends.http.app on the same port, behind
the same guards (jarvis.frontends.http.serving: host check, access token, limits); `server_app`
builds that pair; `build_ui(config, controller)` returns the Blocks for tests and embedding.

Fair share: each visitor (access token, else address) runs at most server.max_runs_per_caller
requests at once, and local models run one at a time only while they run (the controller's
executor holds that slot), so a visitor stalled on a slow LLM endpoint blocks nobody."""
from __future__ import annotations

import gc
import logging
import os
import time
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from gradio.routes import App as GradioApp
from starlette.routing import Mount

from jarvis.config import Config
from jarvis.errors import ApiError, ConfigError, JarvisError
from jarvis.events import AnswerDelta
from jarvis.frontends.http.access import OWNER_STATE
from jarvis.frontends.http.app import create_app
from jarvis.frontends.http.fair_share import FairShare, caller_key
from jarvis.frontends.http.serving import exposure_warnings, run, server_controller
from jarvis.frontends.safe_text import escape_text
from jarvis.frontends.web.credentials import Choice, field_hint, resolve, status_markdown
from jarvis.frontends.web.gradio_cache import copies_of, delete_copies, shown_paths
from jarvis.frontends.web.render import TurnRenderer, user_messages
from jarvis.frontends.web.sessions import SessionRegistry, UISession
from jarvis.pipeline.controller import Controller

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
CHAT_CONCURRENCY = 16          # requests answered at once (LLM and remote calls wait on the network)
STREAM_INTERVAL = 0.08         # seconds between chat refreshes while the answer streams

INTRO = """# 🤖 Jarvis
An LLM plans your request into tasks, picks a Hugging Face model for each, runs them and answers
(HuggingGPT). Attach images, audio or video with 📎; ask for captions, speech, generated pictures,
transcripts, translations… Files keep their names below, so later messages can refer to them."""


def _examples() -> list[tuple[str, dict]]:
    """(label, MultimodalTextbox value) for each shipped example whose files exist."""
    ex = EXAMPLES_DIR
    items = [
        ("Count across images", {"text": "How many balls are there in shapes-a.png and shapes-b.png altogether?",
                                 "files": [str(ex / "shapes-a.png"), str(ex / "shapes-b.png")]}),
        ("Caption, then speak", {"text": "Describe this picture, then read the description aloud.",
                                 "files": [str(ex / "street.png")]}),
        ("Generate, then describe", {"text": "Generate an image of a red bicycle by a lake, then tell me what "
                                             "is in the generated image.", "files": []}),
        ("Transcribe, then translate", {"text": "Transcribe this recording and translate it into French.",
                                        "files": [str(ex / "hello.wav")]}),
    ]
    return [(label, v) for label, v in items if all(Path(f).is_file() for f in v["files"])]


def _resources_markdown(session) -> str:
    items = session.store.list() if session else []
    if not items:
        return "_No files yet. Attach some, or ask for something to be generated._"
    rows = ["Refer to these names in your requests.", "", "| name | type | from |", "|---|---|---|"]
    rows += [f"| `{r.name}` | {r.type} | {r.origin} |" for r in items]
    return "\n".join(rows)


def _files_of(message) -> tuple[str, list[str]]:
    if isinstance(message, str):
        return message, []
    message = message or {}
    files = []
    for f in message.get("files") or []:
        files.append(f.get("path") if isinstance(f, dict) else str(f))
    return str(message.get("text") or ""), [f for f in files if f]


def _oauth_ready() -> bool:
    """Sign-in shows on a Space with `hf_oauth: true`, which sets OAUTH_CLIENT_ID (gradio[oauth] is a dependency)."""
    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID"))


def _caller(request: gr.Request) -> str:
    """Who a visitor is for the fair share: their access token (the access gate put its owner id in
    the request's state), else their address (as the host check left it: behind trusted proxies,
    the forwarded one)."""
    owner = getattr(getattr(request, "state", None), OWNER_STATE, "")
    client = getattr(request, "client", None)
    return caller_key(owner if isinstance(owner, str) else "", getattr(client, "host", None))


def build_ui(config: Config, controller: Controller) -> gr.Blocks:
    """The Blocks of the app. Everything per user lives in this app's session registry."""

    def forget_copies(item: UISession) -> None:
        delete_copies(demo, item.cached)
        item.cached.clear()

    registry = SessionRegistry(config.session.ttl_minutes * 60, on_close=forget_copies)
    registry.start_sweeper(interval=min(60.0, max(1.0, config.session.ttl_minutes * 60 / 4)))
    share = FairShare(CHAT_CONCURRENCY, config.server.max_runs_per_caller)
    sign_in = _oauth_ready()
    env = config.credentials

    def settings(openai_key: str, hf_token: str, base_url: str, model: str, mode: str,
                 oauth_token: gr.OAuthToken | None) -> Choice:
        return resolve(config, openai_key, hf_token, base_url, model, mode,
                       oauth_token.token if oauth_token is not None else None)

    def show_status(openai_key: str, hf_token: str, base_url: str, model: str, mode: str,
                    oauth_token: gr.OAuthToken | None = None) -> str:
        try:
            return status_markdown(settings(openai_key, hf_token, base_url, model, mode, oauth_token))
        except ConfigError as exc:
            return f"⚠️ {exc}"

    def respond(message, openai_key: str, hf_token: str, base_url: str, model: str, mode: str,
                request: gr.Request, oauth_token: gr.OAuthToken | None = None):
        """One turn: yields (chat, input box, resources) as the controller's events arrive."""
        text, files = _files_of(message)
        key = request.session_hash or "anonymous"
        idle_box = gr.MultimodalTextbox(value=None, interactive=True)
        busy_box = gr.MultimodalTextbox(value=None, interactive=False)
        try:
            choice = settings(openai_key, hf_token, base_url, model, mode, oauth_token)
        except ConfigError as exc:
            item = registry.get(key, config)
            item.cached |= copies_of(files)
            shown = item.display + user_messages(text, files) + [
                {"role": "assistant", "content": f"⚠️ **Settings problem:** {escape_text(exc)}. Fix it under "
                                                 "*Advanced settings*."}]
            yield shown, gr.MultimodalTextbox(value=message, interactive=True), _resources_markdown(item.session)
            return
        item = registry.get(key, choice.config)
        item.cached |= copies_of(files)
        session = item.session
        if not session.busy.acquire(blocking=False):
            yield (item.display + [{"role": "assistant", "content": "⏳ Still working on your previous request: "
                                    "wait for it, or press **Stop**."}],
                   gr.MultimodalTextbox(value=message, interactive=True), _resources_markdown(session))
            return
        try:
            ticket = share.admit(_caller(request))
        except ApiError as exc:
            session.busy.release()
            yield (item.display + [{"role": "assistant", "content": f"⏳ {exc.message[:1].upper()}{exc.message[1:]}."}],
                   gr.MultimodalTextbox(value=message, interactive=True), _resources_markdown(session))
            return
        turn = TurnRenderer(lambda ref: session.store.find(ref))
        before = item.display + user_messages(text, files)
        try:
            session.config = choice.config
            session.cancel.clear()
            yield before + turn.messages, busy_box, _resources_markdown(session)
            last = 0.0
            for event in controller.run(session, text, files):
                turn.update(event)
                now = time.perf_counter()
                if not isinstance(event, AnswerDelta) or now - last >= STREAM_INTERVAL:
                    last = now
                    yield before + turn.messages, busy_box, _resources_markdown(session)
        except Exception as exc:
            log.exception("request failed")
            turn.fail(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            ticket.finish()
            item.display = before + turn.messages
            item.cached |= copies_of(shown_paths(turn.messages))
            session.touch()
            session.busy.release()
        yield item.display, idle_box, _resources_markdown(session)

    def stop(request: gr.Request) -> None:
        item = registry.peek(request.session_hash or "anonymous")
        if item is not None:
            item.session.cancel.set()

    def clear(request: gr.Request) -> tuple[list[dict[str, Any]], str]:
        item = registry.peek(request.session_hash or "anonymous")
        if item is not None:
            item.session.cancel.set()
            if item.session.busy.acquire(timeout=30):
                try:
                    item.session.clear()
                    item.display = []
                    forget_copies(item)
                finally:
                    item.session.busy.release()
        return [], _resources_markdown(item.session if item else None)

    def end(request: gr.Request) -> None:
        registry.close(request.session_hash or "anonymous")

    with gr.Blocks(title="Jarvis", fill_height=False,
                   delete_cache=(600, int(config.session.ttl_minutes * 60))) as demo:
        gr.Markdown(INTRO)
        status = gr.Markdown(elem_id="jarvis-status")
        with gr.Row():
            with gr.Column(scale=3):
                # no LaTeX: Gradio cuts $$...$$ out of the Markdown before parsing it, across code
                # blocks, which would undo jarvis.frontends.safe_text's work on a model's answer
                chatbot = gr.Chatbot(label="Chat", height=620, elem_id="jarvis-chat", buttons=["copy", "copy_all"],
                                     placeholder="Ask for something, e.g. *caption this photo and read it aloud*.",
                                     latex_delimiters=[], sanitize_html=True)
                box = gr.MultimodalTextbox(file_count="multiple", file_types=["image", "audio", "video"],
                                           placeholder="Type a request; 📎 attaches images, audio, video",
                                           show_label=False, elem_id="jarvis-input", autofocus=True)
                with gr.Row():
                    stop_btn = gr.Button("⏹ Stop", variant="stop", size="sm", interactive=False,
                                         elem_id="jarvis-stop")
                    clear_btn = gr.Button("🗑 Clear chat and files", size="sm")
                examples = _examples()
                if examples:
                    gr.Examples(examples=[[v] for _, v in examples], example_labels=[lbl for lbl, _ in examples],
                                inputs=[box], label="Examples")
            with gr.Column(scale=1, min_width=340):
                with gr.Accordion("🔑 Keys", open=not (env.openai_api_key or env.hf_token)):
                    if sign_in:
                        gr.LoginButton("Sign in with Hugging Face")
                    openai_key = gr.Textbox(label="OpenAI API key", type="password", placeholder="sk-…",
                                            info=field_hint(env.openai_api_key, "OpenAI API key", "OPENAI_API_KEY"))
                    hf_token = gr.Textbox(label="Hugging Face token", type="password", placeholder="hf_…",
                                          info=field_hint(env.hf_token, "Hugging Face token", "HF_TOKEN"))
                with gr.Accordion("⚙️ Advanced settings", open=False):
                    base_url = gr.Textbox(label="LLM base URL", placeholder=config.llm.base_url or
                                          "empty: OpenAI, or the HF router with only an HF token",
                                          info="Empty keeps the server's setting. Any OpenAI-compatible server "
                                               "(vLLM, TGI, Ollama, llama.cpp); the server's key is not sent "
                                               "to a URL typed here.")
                    model = gr.Textbox(label="LLM model", placeholder=config.llm.model or
                                       "empty: gpt-4o-mini, or an open model on the HF router",
                                       info="Empty keeps the server's setting.")
                    mode = gr.Radio(["local", "remote", "hybrid"], value=config.inference.mode,
                                    label="Where models run",
                                    info="local: on this machine · remote: HF Inference Providers · "
                                         "hybrid: local when possible")
                gr.Markdown("### 📁 Files of this session")
                resources = gr.Markdown(_resources_markdown(None), elem_id="jarvis-resources")
        keys: list[gr.Textbox | gr.Radio] = [openai_key, hf_token, base_url, model, mode]
        demo.load(show_status, keys, status, api_name="status")
        for comp in keys:
            comp.change(show_status, keys, status, api_visibility="private", show_progress="hidden")
        # Stop is enabled only while a request of this page runs
        box.submit(lambda: gr.Button(interactive=True), None, stop_btn, queue=False, api_visibility="private",
                   show_progress="hidden").then(
            respond, [box, *keys], [chatbot, box, resources], api_name="chat",
            concurrency_id="jarvis-chat", concurrency_limit=CHAT_CONCURRENCY, show_progress="minimal").then(
            lambda: gr.Button(interactive=False), None, stop_btn, queue=False, api_visibility="private",
            show_progress="hidden")
        stop_btn.click(stop, None, None, api_name="stop", concurrency_limit=None, queue=False)
        clear_btn.click(clear, None, [chatbot, resources], api_name="clear", concurrency_limit=None)
        demo.unload(end)
    demo.jarvis_registry = registry   # for tests and shutdown: the sessions of this app
    return demo


def _address() -> tuple[str, int]:
    host = os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")
    try:
        port = int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    except ValueError:
        raise ConfigError(f"GRADIO_SERVER_PORT must be a port number, got {os.environ['GRADIO_SERVER_PORT']!r}") from None
    return host, port


def launch(config: Config) -> int:
    """Serve the app on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT, with the HTTP API of jarvis.frontends.http.app
    on the same port (the web app at /). Returns an exit code."""
    try:
        host, port = _address()
        config = config.serving_on(host)   # reachable from other machines: caller-chosen URLs go public-only
        controller = server_controller(config)
        app, sessions = server_app(config, controller)
    except Exception as exc:
        if not isinstance(exc, (JarvisError, OSError)):   # not one Jarvis explains: the log has the trace
            log.exception("the web app could not start")
        print(f"error: cannot start the web app: {exc}", flush=True)
        return 2
    for note in exposure_warnings(config, host):
        print(note, flush=True)
    shown = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    print(f"Jarvis web app on {shown} (and the HTTP API on the same port)", flush=True)
    try:
        run(app, config, host, port, on_stop=lambda: _stop_running(app, sessions))
    except KeyboardInterrupt:
        pass
    finally:
        sessions.close_all()
        controller.close()
    gc.freeze()    # the interpreter's last collections would walk every object Gradio made: 2-3 s of the stop
    return 0


def _stop_running(app: FastAPI, sessions: SessionRegistry) -> None:
    """The server is stopping (SIGTERM, Ctrl-C; runs on the event loop): every running request
    (web and API) stops now, and so does each browser's heartbeat stream to Gradio (as Gradio's own
    launch does it), so that no open stream holds the shutdown."""
    app.state.jarvis.stop_all()
    for key in list(sessions.keys()):
        item = sessions.peek(key)
        if item is not None:
            item.session.cancel.set()
    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, GradioApp):
            route.app.stop_event.set()


def server_app(config: Config, controller: Controller) -> tuple[FastAPI, SessionRegistry]:
    """The web app mounted at / on the HTTP API's app, as `launch` serves them (behind the guards
    of jarvis.frontends.http.serving), and the web app's sessions (closed at shutdown). Uploads
    are limited like API bodies (server.max_body_mb). Gradio's own MCP server stays off whatever
    GRADIO_MCP_SERVER says: Jarvis's (jarvis.frontends.mcp) serves /gradio_api/mcp/, and the web app's
    endpoints (chat, status, stop, clear) are not tools."""
    demo = build_ui(config, controller).queue(default_concurrency_limit=CHAT_CONCURRENCY)
    app = gr.mount_gradio_app(create_app(config, controller), demo, path="/", allowed_paths=[str(EXAMPLES_DIR)],
                              ssr_mode=False, show_error=True, max_file_size=int(config.server.max_body_mb * 2**20),
                              mcp_server=False)
    sessions: SessionRegistry = demo.jarvis_registry
    return app, sessions
