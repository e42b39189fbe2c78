"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol, answering from
a script. Driven through the real `openai` client: nothing in the code under test is patched.

The script decides by the kind of call (plan / select / answer / chat, recognised from the
prompts) or by a queue of replies. Faults on demand: an HTTP status, a delay, a malformed body.
Every request is recorded (path, headers, JSON body) so tests can check which key went where.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
    status: int = 500
    body: str = '{"error": {"message": "scripted failure"}}'
    delay: float = 0.0
    headers: dict = field(default_factory=dict)


class ScriptedLLM:
    """Start with `with ScriptedLLM(plan=..., answer=...) as llm:`; point base_url at llm.url."""

    def __init__(self, plan: str | Callable = "[]", select: str | Callable | None = None,
                 answer: str | Callable = "Done.", chat: str | Callable = "Hello!", delay: float = 0.0,
                 usage: tuple[int, int] | None = None):
        self.script = {"plan": plan, "select": select, "answer": answer, "chat": chat}
        self.delay = delay
        self.usage = usage
        self.requests: list[dict] = []
        self.faults: list[Fault] = []          # consumed one per request, first
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ----------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ScriptedLLM:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def kinds(self) -> list[str]:
        return [kind_of(r["json"].get("messages", [])) for r in self.requests if r["json"]]

    # -- replies --------------------------------------------------------------
    def _reply_text(self, body: dict) -> str:
        messages = body.get("messages", [])
        kind = kind_of(messages)
        script = self.script.get(kind)
        if kind == "select" and script is None:
            return "{}"  # no choice: the code under test falls back to the top-ranked model
        if callable(script):
            return script(messages)
        return str(script)

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
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "scripted", "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {}
                with outer.lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    outer.requests.append({"path": self.path, "headers": headers, "json": body})
                    fault = outer.faults.pop(0) if outer.faults else None
                if fault:
                    if fault.delay:
                        time.sleep(fault.delay)
                    try:
                        self._send(fault.status, fault.body.encode(), headers=fault.headers)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                if not self.path.split("?")[0].endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "unknown route"}}')
                    return
                if outer.delay:
                    time.sleep(outer.delay)
                text = outer._reply_text(body)
                prompt_tokens = sum(len(str(m.get("content", ""))) // 4 for m in body.get("messages", []))
                completion_tokens = max(1, len(text) // 4)
                if outer.usage:
                    prompt_tokens, completion_tokens = outer.usage
                usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens}
                model = body.get("model", "scripted")
                if body.get("stream"):
                    self._stream(text, model, usage if (body.get("stream_options") or {}).get("include_usage") else None)
                    return
                reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": model,
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": text}}],
                         "usage": usage}
                self._send(200, json.dumps(reply).encode())

            def _stream(self, text: str, model: str, usage: dict | None):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                pieces = [text[i:i + 12] for i in range(0, len(text), 12)] or [""]
                base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
                try:
                    for i, piece in enumerate(pieces):
                        delta = {"content": piece} if i else {"role": "assistant", "content": piece}
                        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
                    if usage:
                        self.wfile.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        return Handler
