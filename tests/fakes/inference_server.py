"""A loopback stand-in for Hugging Face's inference service (hf-inference wire format).

Answers POST /models/{org}/{name} (and .../pipeline/{task}) with the payloads the real service
returns for the model's task: JSON for labels, answers and text, raw bytes with a content type for
images, audio and video; POST .../v1/chat/completions (and /v1/chat/completions) with an OpenAI-style
chat completion, describing the image when a message carries one. A model is served for its own task
only, and a body not of the shape the real API takes for that task (inference_shapes.py) gets its 400.
Faults on demand per model id:
401, 403, 404, 429 (Retry-After), 503 loading (estimated_time), slow (past a client timeout), broken
payloads. Every request is recorded (path, headers, body) so tests can check where a token went.
"""
from __future__ import annotations

import base64
import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.inference_shapes import shape_error
from tests.fakes.loopback import HandlerThread

# model id -> task, as the Hub's pipeline tag would say ("chat": conversational, "vlm": image+text chat)
DEFAULT_MODELS: dict[str, str] = {
    "distilbert/distilbert-base-uncased-finetuned-sst-2-english": "text-classification",
    "cardiffnlp/twitter-roberta-base-sentiment-latest": "text-classification",
    "dslim/bert-base-NER": "token-classification",
    "facebook/bart-large-cnn": "summarization",
    "Helsinki-NLP/opus-mt-en-fr": "translation",
    "distilbert/distilbert-base-cased-distilled-squad": "question-answering",
    "sentence-transformers/all-MiniLM-L6-v2": "sentence-similarity",
    "Qwen/Qwen2.5-0.5B-Instruct": "chat",
    "meta-llama/Llama-3.1-8B-Instruct": "chat",
    "openai-community/gpt2": "text-generation",
    "google/flan-t5-base": "text-generation",
    "google/vit-base-patch16-224": "image-classification",
    "facebook/detr-resnet-50": "object-detection",
    "hustvl/yolos-tiny": "object-detection",
    "nvidia/segformer-b0-finetuned-ade-512-512": "image-segmentation",
    "Salesforce/blip-image-captioning-base": "image-to-text",
    "dandelin/vilt-b32-finetuned-vqa": "visual-question-answering",
    "impira/layoutlm-document-qa": "document-question-answering",
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "text-to-image",
    "black-forest-labs/FLUX.1-schnell": "text-to-image",
    "timbrooks/instruct-pix2pix": "image-to-image",
    "facebook/mms-tts-eng": "text-to-speech",
    "openai/whisper-tiny": "automatic-speech-recognition",
    "openai/whisper-large-v3": "automatic-speech-recognition",
    "MIT/ast-finetuned-audioset-10-10-0.4593": "audio-classification",
    "speechbrain/sepformer-wham": "audio-to-audio",
    "ali-vilab/text-to-video-ms-1.7b": "text-to-video",
    "Qwen/Qwen2.5-VL-7B-Instruct": "vlm",
}
VLM_ANSWER = "A small red square on a white background."


def png_bytes(size: tuple[int, int] = (32, 32), colour: tuple[int, int, int] = (200, 30, 30), mode: str = "RGB") -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new(mode, size, colour if mode == "RGB" else 255).save(buf, format="PNG")
    return buf.getvalue()


def flac_bytes(seconds: float = 0.25, rate: int = 16000) -> bytes:
    import numpy as np
    import soundfile as sf
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), rate, format="FLAC")
    return buf.getvalue()


def mp4_bytes(frames: int = 4, size: int = 32) -> bytes:
    import av
    import numpy as np
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        for codec in ("libx264", "libopenh264", "mpeg4"):
            try:
                stream = container.add_stream(codec, rate=8)
                break
            except Exception:
                continue
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Fault:
    kind: str                 # "401", "403", "404", "429", "503", "slow", "broken"
    times: int | None = None  # how many requests it applies to (None: all)
    options: dict = field(default_factory=dict)


class InferenceServer:
    """Threaded HTTP server on 127.0.0.1 (port 0); use as a context manager or start()/stop()."""

    def __init__(self, models: dict[str, str] | None = None, token: str | None = None,
                 endpoint_task: str | None = None):
        self.models = dict(DEFAULT_MODELS if models is None else models)
        self.token = token                  # when set, a request without "Bearer <token>" gets 401
        self.endpoint_task = endpoint_task  # answer any other path as this task (a dedicated endpoint)
        self.requests: list[Recorded] = []
        self.faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._media: dict[str, bytes] = {}
        self._serving: HandlerThread | None = None

    # -- control -----------------------------------------------------------------------
    def start(self) -> InferenceServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                server._handle(self, body)

            def do_GET(self):
                server._send(self, 404, "application/json", b'{"error": "not found"}')

        self._serving = HandlerThread(Handler).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._serving is not None:
            self._serving.close()

    def __enter__(self) -> InferenceServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._serving is not None, "start the server first"
        return self._serving.url

    def fault(self, model_id: str, kind: str, times: int | None = None, **options: Any) -> None:
        with self._lock:
            self.faults[model_id] = Fault(str(kind), times, options)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def calls(self, model_id: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(f"/models/{model_id}")
                    or (r.path.endswith("/chat/completions") and _json_model(r.body) == model_id)]

    # -- serving -----------------------------------------------------------------------
    def _media_bytes(self, kind: str) -> bytes:
        if kind not in self._media:
            self._media[kind] = {"png": png_bytes, "flac": flac_bytes, "mp4": mp4_bytes}[kind]()
        return self._media[kind]

    @staticmethod
    def _send(handler, status: int, ctype: str, body: bytes, headers: dict | None = None) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def _route(self, path: str, body: bytes) -> tuple[str | None, str]:
        """(model id, kind of call) from the path: kind is the task, or "chat"."""
        chat = path.rstrip("/").endswith("/chat/completions")
        if path.startswith("/models/"):
            parts = path[len("/models/"):].split("/")
            return "/".join(parts[:2]), "chat" if chat else self.models.get("/".join(parts[:2]), "")
        if chat:
            return _json_model(body), "chat"
        if self.endpoint_task:
            return "endpoint", self.endpoint_task
        return None, ""

    def _handle(self, handler, body: bytes) -> None:
        path = handler.path.split("?")[0]
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(Recorded("POST", path, headers, body))
        model_id, kind = self._route(path, body)
        if self.token and headers.get("authorization") != f"Bearer {self.token}":
            return self._send(handler, 401, "application/json",
                              b'{"error": "Invalid credentials in Authorization header"}')
        with self._lock:
            fault = self.faults.get(model_id or "")
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times < 0:
                    self.faults.pop(model_id, None)
                    fault = None
        if fault is not None and self._fault(handler, fault, model_id, kind):
            return
        served = kind and (kind != "chat" or self.models.get(model_id or "") in ("chat", "vlm")
                           or model_id == "endpoint" or not path.startswith("/models/"))
        if not served:
            return self._send(handler, 404, "application/json",
                              json.dumps({"error": f"Model {model_id} is not served here"}).encode())
        refused = shape_error(kind, headers.get("content-type", ""), body)
        if refused:   # what the real API answers a body of the wrong shape for the model's task
            return self._send(handler, 400, "application/json", json.dumps({"error": refused}).encode())
        status, ctype, payload = self._answer(kind, model_id or "", body, headers)
        self._send(handler, status, ctype, payload)

    def _fault(self, handler, fault: Fault, model_id: str, kind: str) -> bool:
        """Send the fault's response; False when the request should then be answered normally."""
        k, opts = fault.kind, fault.options
        if k in ("401", "403"):
            self._send(handler, int(k), "application/json", b'{"error": "Invalid username or password."}')
        elif k == "404":
            self._send(handler, 404, "application/json", json.dumps({"error": f"Model {model_id} does not exist"}).encode())
        elif k == "429":
            self._send(handler, 429, "application/json", b'{"error": "Rate limit reached"}',
                       {"Retry-After": str(opts.get("retry_after", 0))})
        elif k == "503":
            self._send(handler, 503, "application/json", json.dumps(
                {"error": f"Model {model_id} is currently loading",
                 "estimated_time": opts.get("estimated_time", 0.05)}).encode())
        elif k == "500":
            self._send(handler, 500, "application/json", b'{"error": "internal error"}')
        elif k == "slow":
            return bool(self._stop.wait(float(opts.get("delay", 5.0))))
        elif k == "broken":
            media = {"text-to-image": "image/png", "image-to-image": "image/png", "text-to-speech": "audio/flac",
                     "text-to-video": "video/mp4"}.get(kind, "application/json")
            self._send(handler, 200, media, b"{this is not what you expected")
        else:
            raise ValueError(f"unknown fault {k}")
        return True

    def _answer(self, kind: str, model_id: str, body: bytes, headers: dict) -> tuple[int, str, bytes]:
        def js(obj: Any) -> tuple[int, str, bytes]:
            return 200, "application/json", json.dumps(obj).encode()
        data = _maybe_json(body, headers)
        inputs = data.get("inputs") if isinstance(data, dict) else None
        if kind == "chat":
            return js(_chat(model_id, data))
        if kind == "text-classification":
            return js([[{"label": "POSITIVE", "score": 0.9731}, {"label": "NEGATIVE", "score": 0.0269}]])
        if kind == "token-classification":
            return js([{"entity_group": "PER", "score": 0.998, "word": "Sarah", "start": 11, "end": 16},
                       {"entity_group": "LOC", "score": 0.995, "word": "London", "start": 30, "end": 36}])
        if kind == "summarization":
            return js([{"summary_text": "A short summary."}])
        if kind == "translation":
            return js([{"translation_text": "Bonjour le monde."}])
        if kind == "question-answering":
            return js({"answer": "Paris", "score": 0.92, "start": 0, "end": 5})
        if kind == "sentence-similarity":
            return js([0.8123 for _ in (inputs or {}).get("sentences", [0])])
        if kind == "text-generation":
            return js([{"generated_text": f"{inputs} and then some more words."}])
        if kind == "image-classification":
            return js([{"label": "tabby cat", "score": 0.81}, {"label": "tiger cat", "score": 0.12}])
        if kind == "object-detection":
            return js([{"score": 0.97, "label": "cat", "box": {"xmin": 2, "ymin": 3, "xmax": 20, "ymax": 25}},
                       {"score": 0.88, "label": "remote", "box": {"xmin": 10, "ymin": 10, "xmax": 30, "ymax": 30}}])
        if kind == "image-segmentation":
            mask = base64.b64encode(png_bytes((32, 32), mode="L")).decode()
            return js([{"score": 0.99, "label": "wall", "mask": mask}, {"score": 0.91, "label": "floor", "mask": mask}])
        if kind == "image-to-text":
            return js([{"generated_text": "a red square"}])
        if kind == "visual-question-answering":
            return js([{"answer": "red", "score": 0.93}, {"answer": "orange", "score": 0.04}])
        if kind == "document-question-answering":
            return js([{"answer": "42 EUR", "score": 0.88, "start": 10, "end": 11}])
        if kind in ("text-to-image", "image-to-image"):
            return 200, "image/png", self._media_bytes("png")
        if kind == "text-to-speech":
            return 200, "audio/flac", self._media_bytes("flac")
        if kind == "automatic-speech-recognition":
            return js({"text": " hello world"})
        if kind == "audio-classification":
            return js([{"label": "Speech", "score": 0.77}, {"label": "Music", "score": 0.2}])
        if kind == "audio-to-audio":
            blob = base64.b64encode(self._media_bytes("flac")).decode()
            return js([{"label": "speaker_1", "content-type": "audio/flac", "blob": blob}])
        if kind == "text-to-video":
            return 200, "video/mp4", self._media_bytes("mp4")
        return 400, "application/json", json.dumps({"error": f"task {kind} is not implemented here"}).encode()


def _maybe_json(body: bytes, headers: dict) -> Any:
    if "json" not in headers.get("content-type", ""):
        return None
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def _json_model(body: bytes) -> str | None:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None
    return data.get("model") if isinstance(data, dict) else None


def _chat(model_id: str, data: Any) -> dict:
    messages = (data or {}).get("messages") or []
    content = messages[-1].get("content") if messages else ""
    has_image = isinstance(content, list) and any(
        part.get("type") == "image_url" and str(part.get("image_url", {}).get("url", "")).startswith("data:image/")
        for part in content if isinstance(part, dict))
    text = content if isinstance(content, str) else " ".join(
        p.get("text", "") for p in content if isinstance(p, dict))
    answer = VLM_ANSWER if has_image else f"Reply to: {text}"
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": (data or {}).get("model", model_id),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}}
