"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol, answering from
a script. Driven through the real `openai` client: nothing in the code under test is patched.

As strict as a real endpoint: a request without the configured key gets OpenAI's 401, a model the
server does not know gets its 404 (`model_not_found`), a request's `max_tokens` cuts the reply with
finish_reason "length" (a token here is 4 characters, as the usage counts say). On demand it also
misbehaves the way real servers do: a stream that breaks midway, a reasoning model's
`<think>...</think>` block before the answer, a refusal of `response_format`.

The script decides by the kind of call (plan / select / answer / chat, recognised from the
prompts) or by a queue of replies. A reply given as a list of strings is streamed as exactly those
chunks; `chunk_delay` paces a stream (a slow server on a CPU). Faults on demand: an HTTP status, a
delay, a malformed body, a stream cut after N chunks, a stream that falls silent after N chunks.
Every request is recorded (path, headers, JSON body) so tests can check which key went where; a
streamed one also records when each chunk went out (`sent`) and whether the client hung up before
the end (`hung_up`).
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import HandlerThread

# What the configuration's defaults ask for (jarvis.config: OPENAI_DEFAULT_MODEL, HF_ROUTER_MODEL),
# and the name tests give a scripted model.
KNOWN_MODELS = ("gpt-4o-mini", "Qwen/Qwen2.5-72B-Instruct", "scripted")
CHARS_PER_TOKEN = 4
CHUNK_CHARS = 12


def kind_of(messages: list[dict]) -> str:
    first = str(messages[0].get("content", "")) if messages else ""
    if "You are the planner" in first:
        return "plan"
    if first.startswith("Choose one model"):
        return "select"
    if "Below are the request" in first:
        return "answer"
    return "chat"


@dataclass
class Fault:
    """One request's misbehaviour: an HTTP status with a body (after `delay` seconds), or, with
    `cut_after`, the scripted reply broken midway: a stream stops after that many chunks (no
    finish_reason, no [DONE]), a plain answer after half its promised body. With `stall_after`, the
    scripted reply instead falls silent after that many chunks for `stall` seconds, then goes on."""
    status: int = 500
    body: str = '{"error": {"message": "scripted failure"}}'
    delay: float = 0.0
    headers: dict = field(default_factory=dict)
    cut_after: int | None = None
    stall_after: int | None = None
    stall: float = 0.0


def _error(message: str, code: str | None, kind: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


def _masked(key: str) -> str:
    """How OpenAI shows a wrong key in its 401: its first and last characters only."""
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "***"


class ScriptedLLM:
    """Start with `with ScriptedLLM(plan=..., answer=...) as llm:`; point base_url at llm.url.

    `key`: the API key (or keys) it accepts, as Bearer or Azure's api-key header; None stands for a
    local server without authentication (Ollama, llama.cpp), which takes any key. `models`: the
    model (Azure: deployment) names it serves. `think`: a reasoning block sent before every reply.
    `refuse_response_format`: answer 400 to a request carrying `response_format`.
    `honour_max_tokens=False` stands for a proxy that ignores max_tokens (hostile-answer corpora).
    `chunk_delay`: seconds between two chunks of a stream."""

    def __init__(self, plan: str | Callable = "[]", select: str | Callable | None = None,
                 answer: str | Callable = "Done.", chat: str | Callable = "Hello!", delay: float = 0.0,
                 usage: tuple[int, int] | None = None, *, key: str | Collection[str] | None = "sk-test",
                 models: Collection[str] = KNOWN_MODELS, think: str | None = None,
                 refuse_response_format: bool = False, honour_max_tokens: bool = True, chunk_delay: float = 0.0):
        self.script = {"plan": plan, "select": select, "answer": answer, "chat": chat}
        self.delay = delay
        self.usage = usage
        self.keys: set[str] | None = None if key is None else {key} if isinstance(key, str) else set(key)
        self.models = set(models)
        self.think = think
        self.refuse_response_format = refuse_response_format
        self.honour_max_tokens = honour_max_tokens
        self.chunk_delay = chunk_delay
        self.requests: list[dict] = []
        self.refused: list[dict] = []           # requests answered 401/404/400 by the strict checks
        self.faults: list[Fault] = []          # consumed one per request, first
        self.lock = threading.Lock()
        self._serving = HandlerThread(self._handler())

    # -- lifecycle ----------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{self._serving.url}/v1"

    def start(self) -> ScriptedLLM:
        self._serving.start()
        return self

    def close(self) -> None:
        self._serving.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def kinds(self) -> list[str]:
        return [kind_of(r["json"].get("messages", [])) for r in self.requests if r["json"]]

    # -- what a real endpoint checks ------------------------------------------
    def refusal(self, path: str, headers: dict[str, str], body: dict) -> tuple[int, bytes] | None:
        """The 401/404/400 a real endpoint would answer this request with, or None."""
        bearer = headers.get("authorization", "")
        given = bearer[len("Bearer "):] if bearer.startswith("Bearer ") else headers.get("api-key", "")
        if self.keys is not None and given not in self.keys:
            if not given:
                return 401, _error("You didn't provide an API key. You need to provide your API key in an "
                                   "Authorization header using Bearer auth.", None)
            return 401, _error(f"Incorrect API key provided: {_masked(given)}. You can find your API key "
                               "at https://platform.openai.com/account/api-keys.", "invalid_api_key")
        route = path.split("?")[0]
        if "/deployments/" in route:      # Azure: the deployment in the path is the model
            model: str | None = route.split("/deployments/", 1)[1].split("/", 1)[0]
        else:
            model = str(body.get("model", "")) if route.endswith("/chat/completions") else None
        if model is not None and model not in self.models:
            return 404, _error(f"The model `{model}` does not exist or you do not have access to it.",
                               "model_not_found")
        if self.refuse_response_format and "response_format" in body:
            return 400, _error("'response_format' is not supported with this model.", None)
        return None

    # -- replies --------------------------------------------------------------
    def _reply_pieces(self, body: dict) -> list[str]:
        messages = body.get("messages", [])
        kind = kind_of(messages)
        script = self.script.get(kind)
        if kind == "select" and script is None:
            return ["{}"]  # no choice: the code under test falls back to the top-ranked model
        value = script(messages) if callable(script) else script
        pieces = [str(p) for p in value] if isinstance(value, (list, tuple)) else [str(value)]
        return [f"<think>\n{self.think}\n</think>\n\n", *pieces] if self.think is not None else pieces

    def chunks(self, body: dict) -> tuple[list[str], str, dict]:
        """(the stream's chunks, finish_reason, usage) for a chat completion request: a scripted list
        as given, a text in CHUNK_CHARS pieces."""
        pieces = self._reply_pieces(body)
        text = "".join(pieces)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        if self.honour_max_tokens and isinstance(limit, int) and limit > 0 and len(text) > limit * CHARS_PER_TOKEN:
            text, finish = text[: limit * CHARS_PER_TOKEN], "length"
            pieces = [text]
        if len(pieces) == 1:
            pieces = [text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
        prompt_tokens = sum(len(str(m.get("content", ""))) // CHARS_PER_TOKEN for m in body.get("messages", []))
        completion_tokens = max(1, len(text) // CHARS_PER_TOKEN)
        if self.usage:
            prompt_tokens, completion_tokens = self.usage
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        return pieces, finish, usage

    def reply(self, body: dict) -> tuple[str, str, dict]:
        """(text, finish_reason, usage) for a chat completion request."""
        pieces, finish, usage = self.chunks(body)
        return "".join(pieces), finish, usage

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes, ctype="application/json", headers=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                if not self.path.rstrip("/").endswith("/models"):
                    self._send(404, _error(f"Invalid URL (GET {self.path})", None))
                    return
                refused = outer.refusal(self.path, headers, {})
                if refused:
                    self._send(*refused)
                    return
                data = [{"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in sorted(outer.models)]
                self._send(200, json.dumps({"object": "list", "data": data}).encode())

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {}
                headers = {k.lower(): v for k, v in self.headers.items()}
                record = {"path": self.path, "headers": headers, "json": body}
                refused = outer.refusal(self.path, headers, body if isinstance(body, dict) else {})
                with outer.lock:
                    if refused:
                        outer.refused.append(record)
                        fault = None
                    else:
                        outer.requests.append(record)
                        fault = outer.faults.pop(0) if outer.faults else None
                if refused:
                    self._send(*refused)
                    return
                if fault and fault.delay:
                    time.sleep(fault.delay)
                if fault and fault.cut_after is None and fault.stall_after is None:
                    try:
                        self._send(fault.status, fault.body.encode(), headers=fault.headers)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                if not self.path.split("?")[0].endswith("/chat/completions"):
                    self._send(404, _error(f"Invalid URL (POST {self.path})", None))
                    return
                if outer.delay:
                    time.sleep(outer.delay)
                pieces, finish, usage = outer.chunks(body)
                text = "".join(pieces)
                model = body.get("model", "scripted")
                if body.get("stream"):
                    wants_usage = (body.get("stream_options") or {}).get("include_usage")
                    self._stream(pieces, finish, model, usage if wants_usage else None, fault, record)
                    return
                time.sleep(outer.chunk_delay * (len(pieces) - 1))   # a slow server writes it all before answering
                reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": model,
                         "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                                      "message": {"role": "assistant", "content": text}}],
                         "usage": usage}
                payload = json.dumps(reply).encode()
                if fault is None:
                    self._send(200, payload)
                    return
                self.send_response(200)            # a cut: the promised body stops halfway
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)
                self.close_connection = True

            def _stream(self, pieces: list[str], finish: str, model: str, usage: dict | None, fault: Fault | None,
                        record: dict):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.flush()
                cut_after = fault.cut_after if fault else None
                stall_after = fault.stall_after if fault else None
                base: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                        "created": int(time.time()), "model": model}
                record["sent"], record["hung_up"] = [], False
                try:
                    for i, piece in enumerate(pieces):
                        if cut_after is not None and i >= cut_after:
                            self.wfile.flush()
                            self.connection.shutdown(2)      # the connection drops mid-answer
                            return
                        if i and outer.chunk_delay:
                            time.sleep(outer.chunk_delay)
                        if fault is not None and i == stall_after:
                            time.sleep(fault.stall)          # alive, but silent
                        delta = {"content": piece} if i else {"role": "assistant", "content": piece}
                        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        record["sent"].append((time.perf_counter(), piece))
                    end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
                    self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
                    if usage:
                        self.wfile.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    record["hung_up"] = True                 # the client closed the stream before its end
                finally:
                    self.close_connection = True

        return Handler
