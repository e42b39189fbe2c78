"""The web app (Gradio 6): chat in the browser with live steps, inline media, per-session keys and
files, ready for a Hugging Face Space. It only maps the controller's events to chat messages.

`launch(config)` serves it with the HTTP API of jarvis.frontends.http.app on the same port, behind
the same guards (jarvis.frontends.http.serving: host check, access token, limits); `server_app`
builds that pair; `build_ui(config, controller)` returns the Blocks for tests and embedding.

Fair share: each visitor (access token, else address) runs at most server.max_runs_per_caller
requests at once, and local models run one at a time only while they run (the controller's
executor holds that slot), so a visitor stalled on a slow LLM endpoint blocks nobody.

Conversations (jarvis.frontends.web.library) are saved as they go, keyed by an id each browser keeps
(BrowserState); the side panel (panel.py) lists them. Their files are shown as copies in Gradio's
cache (gradio_cache.in_cache): their folder is never in allowed_paths, so no link reaches it."""
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
from jarvis.events import AnswerDelta, Done, PlanReady, TaskFailed, TaskFinished, TaskSkipped
from jarvis.execution.ray.executor import RayExecutor
from jarvis.frontends.http.access import OWNER_STATE
from jarvis.frontends.http.app import create_app
from jarvis.frontends.http.fair_share import FairShare, caller_key
from jarvis.frontends.http.serving import exposure_warnings, run, server_controller
from jarvis.frontends.safe_text import escape_text
from jarvis.frontends.web.credentials import Choice, field_hint, resolve, status_markdown
from jarvis.frontends.web.gradio_cache import copies_of, delete_copies, in_cache, shown_paths
from jarvis.frontends.web.library import NEW_TITLE, Library, TurnLog
from jarvis.frontends.web.panel import build_panel, resources_markdown, view, wire_panel
from jarvis.frontends.web.render import TurnRenderer, user_messages
from jarvis.frontends.web.sessions import UISession
from jarvis.pipeline.controller import Controller

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
CHAT_CONCURRENCY = 16          # requests answered at once (LLM and remote calls wait on the network)
STREAM_INTERVAL = 0.08         # seconds between chat refreshes while the answer streams
STEP_EVENTS = (PlanReady, TaskFinished, TaskFailed, TaskSkipped)    # a running turn is saved after each
BROWSER_KEY = "jarvis-browser"  # where the browser keeps its id (localStorage, encrypted with the store's secret)

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
    """The Blocks of the app. Everything per user lives in this app's library of conversations."""

    def forget_copies(item: UISession) -> None:
        delete_copies(demo, item.cached | set(item.copies.values()))
        item.cached.clear()
        item.copies.clear()

    library = Library(config, on_close=forget_copies)
    library.start_sweeper(interval=min(60.0, max(1.0, config.session.ttl_minutes * 60 / 4)))
    share = FairShare(CHAT_CONCURRENCY, config.server.max_runs_per_caller)
    sign_in = _oauth_ready()
    env = config.credentials

    def settings(openai_key: str, hf_token: str, base_url: str, model: str, mode: str,
                 oauth_token: gr.OAuthToken | None) -> Choice:
        return resolve(config, openai_key, hf_token, base_url, model, mode,
                       oauth_token.token if oauth_token is not None else None)

    local = controller.local     # local models on Ray: the status line links Ray's dashboard
    ray_note = (f" Local models run on Ray ([dashboard]({local.dashboard_url}))."
                if isinstance(local, RayExecutor) and local.dashboard_url else "")

    def show_status(openai_key: str, hf_token: str, base_url: str, model: str, mode: str,
                    oauth_token: gr.OAuthToken | None = None) -> str:
        note = f"\n\n{library.note}" if library.note else ""
        try:
            return status_markdown(settings(openai_key, hf_token, base_url, model, mode, oauth_token)) + ray_note + note
        except ConfigError as exc:
            return f"⚠️ {exc}{note}"

    def page(request: gr.Request) -> str:
        return request.session_hash or "anonymous"

    def respond(message, openai_key: str, hf_token: str, base_url: str, model: str, mode: str, owner: str,
                conversation: str, request: gr.Request, oauth_token: gr.OAuthToken | None = None):
        """One turn: yields (chat, input box, resources, owner, conversation) as the controller's
        events arrive; the turn is saved as it goes."""
        text, files = _files_of(message)
        owner = owner or library.identify(None, page(request))[1]    # an API client, or a page not loaded yet
        idle_box = gr.MultimodalTextbox(value=None, interactive=True)
        busy_box = gr.MultimodalTextbox(value=None, interactive=False)
        try:
            choice = settings(openai_key, hf_token, base_url, model, mode, oauth_token)
        except ConfigError as exc:
            shown_item = library.open(owner, conversation, config)
            shown = (shown_item.display if shown_item else []) + user_messages(text, files) + [
                {"role": "assistant", "content": f"⚠️ **Settings problem:** {escape_text(exc)}. Fix it under "
                                                 "*Advanced settings*."}]
            yield (in_cache(shown, shown_item.copies if shown_item else {}),
                   gr.MultimodalTextbox(value=message, interactive=True),
                   resources_markdown(shown_item.session if shown_item else None), owner, conversation)
            return
        item = library.open(owner, conversation, choice.config)
        if item is None:
            conversation, item = library.create(owner, NEW_TITLE, choice.config)
        item.cached |= copies_of(files)
        session = item.session

        def refused(note: str):
            return (in_cache(item.display + [{"role": "assistant", "content": note}], item.copies),
                    gr.MultimodalTextbox(value=message, interactive=True), resources_markdown(session), owner,
                    conversation)

        if not session.busy.acquire(blocking=False):
            yield refused("⏳ Still working on your previous request: wait for it, or press **Stop**.")
            return
        try:
            ticket = share.admit(_caller(request))
        except ApiError as exc:
            session.busy.release()
            yield refused(f"⏳ {exc.message[:1].upper()}{exc.message[1:]}.")
            return
        turn = TurnRenderer(lambda ref: session.store.find(ref))
        before = item.display + user_messages(text, files)
        saved = TurnLog(library, conversation, item, text, files)
        record = None
        try:
            session.config = choice.config
            session.cancel.clear()
            yield in_cache(before + turn.messages, item.copies), busy_box, resources_markdown(session), owner, conversation
            last, first = 0.0, True
            for event in controller.run(session, text, files):
                turn.update(event)
                if isinstance(event, Done):
                    record = event.result.to_dict()
                if first or isinstance(event, STEP_EVENTS):
                    saved.step(turn.messages, first)
                    first = False
                now = time.perf_counter()
                if not isinstance(event, AnswerDelta) or now - last >= STREAM_INTERVAL:
                    last = now
                    yield (in_cache(before + turn.messages, item.copies), busy_box, resources_markdown(session), owner,
                           conversation)
        except Exception as exc:
            log.exception("request failed")
            turn.fail(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            ticket.finish()
            this_turn = saved.user() + turn.messages        # the person's files as this session's copies
            item.display = item.display + this_turn
            item.cached |= copies_of(shown_paths(this_turn))
            saved.finish("failed" if turn.error else "done", turn.messages, record)
            session.touch()
            session.busy.release()
        yield in_cache(item.display, item.copies), idle_box, resources_markdown(session), owner, conversation

    def stop(owner: str, conversation: str) -> None:
        item = library.live(owner, conversation)
        if item is not None:
            item.session.cancel.set()

    def clear(owner: str, conversation: str) -> tuple[list[dict[str, Any]], str]:
        library.clear(owner, conversation, config)
        return [], resources_markdown(None)

    def open_page(browser_id: Any, request: gr.Request):
        """The page opens: the browser's id (a new one for a new browser) and its latest conversation."""
        browser_id, owner = library.identify(browser_id, page(request))
        return (browser_id, owner, *view(library, config, owner, library.latest(owner)))

    def listed(who: str, current: str) -> tuple[Any, str]:
        return gr.Radio(choices=library.choices(who), value=current or None), library.title(who, current)

    def end(request: gr.Request) -> None:
        library.forget_page(library.identify(None, page(request))[1])

    with gr.Blocks(title="Jarvis", fill_height=False,
                   delete_cache=(600, int(config.session.ttl_minutes * 60))) as demo:
        gr.Markdown(INTRO)
        status = gr.Markdown(elem_id="jarvis-status")
        browser = gr.BrowserState("", storage_key=BROWSER_KEY, secret=library.secret)
        owner, conversation = gr.State(""), gr.State("")      # the page's owner key and open conversation
        with gr.Sidebar(label="Conversations", elem_id="jarvis-sidebar"):
            panel = build_panel(library, config)
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
                resources = gr.Markdown(resources_markdown(None), elem_id="jarvis-resources")
        keys: list[gr.Textbox | gr.Radio] = [openai_key, hf_token, base_url, model, mode]
        demo.load(show_status, keys, status, api_name="status")
        demo.load(open_page, [browser], [browser, owner, chatbot, resources, conversation, panel.conversations,
                                         panel.title], api_visibility="private")
        for comp in keys:
            comp.change(show_status, keys, status, api_visibility="private", show_progress="hidden")
        # Stop is enabled only while a request of this page runs
        box.submit(lambda: gr.Button(interactive=True), None, stop_btn, queue=False, api_visibility="private",
                   show_progress="hidden").then(
            respond, [box, *keys, owner, conversation], [chatbot, box, resources, owner, conversation],
            api_name="chat", concurrency_id="jarvis-chat", concurrency_limit=CHAT_CONCURRENCY,
            show_progress="minimal").then(
            lambda: gr.Button(interactive=False), None, stop_btn, queue=False, api_visibility="private",
            show_progress="hidden").then(
            listed, [owner, conversation], [panel.conversations, panel.title], queue=False, api_visibility="private",
            show_progress="hidden")
        stop_btn.click(stop, [owner, conversation], None, api_name="stop", concurrency_limit=None, queue=False)
        clear_btn.click(clear, [owner, conversation], [chatbot, resources], api_name="clear",
                        concurrency_limit=None).then(
            listed, [owner, conversation], [panel.conversations, panel.title], queue=False, api_visibility="private",
            show_progress="hidden")
        wire_panel(panel, library, config, owner, conversation, chatbot, resources)
        demo.unload(end)
    demo.jarvis_library = library     # for tests and shutdown: the conversations and live sessions of this app
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
        app, library = server_app(config, controller)
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
        run(app, config, host, port, on_stop=lambda: _stop_running(app, library))
    except KeyboardInterrupt:
        pass
    finally:
        library.close_all()
        controller.close()
    gc.freeze()    # the interpreter's last collections would walk every object Gradio made: 2-3 s of the stop
    return 0


def _stop_running(app: FastAPI, library: Library) -> None:
    """The server is stopping (SIGTERM, Ctrl-C; runs on the event loop): every running request
    (web and API) stops now (a web turn saves how far it got), and so does each browser's heartbeat
    stream to Gradio (as Gradio's own launch does it), so that no open stream holds the shutdown."""
    app.state.jarvis.stop_all()
    sessions = library.registry
    for key in list(sessions.keys()):
        item = sessions.peek(key)
        if item is not None:
            item.session.cancel.set()
    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, GradioApp):
            route.app.stop_event.set()


def server_app(config: Config, controller: Controller) -> tuple[FastAPI, Library]:
    """The web app mounted at / on the HTTP API's app, as `launch` serves them (behind the guards
    of jarvis.frontends.http.serving), and the web app's conversations (closed at shutdown). Uploads
    are limited like API bodies (server.max_body_mb). Gradio's own MCP server stays off whatever
    GRADIO_MCP_SERVER says: Jarvis's (jarvis.frontends.mcp) serves /gradio_api/mcp/, and the web app's
    endpoints (chat, status, stop, clear) are not tools."""
    demo = build_ui(config, controller).queue(default_concurrency_limit=CHAT_CONCURRENCY)
    app = gr.mount_gradio_app(create_app(config, controller), demo, path="/", allowed_paths=[str(EXAMPLES_DIR)],
                              ssr_mode=False, show_error=True, max_file_size=int(config.server.max_body_mb * 2**20),
                              mcp_server=False)
    library: Library = demo.jarvis_library
    return app, library
