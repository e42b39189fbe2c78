"""A loopback Gradio app standing in for a Hugging Face Space: real Gradio 6, served by uvicorn on
127.0.0.1 and called through the real gradio_client, as a Space would be.

Endpoints, as a Space's view_api() lists them:
  /speak (text) -> audio          text-to-speech: a tone as long as the text, written by Gradio as WAV
  /describe (image) -> text       captioning: names the image's size
  /answer (image, question) -> text
  /broken (text) -> audio         raises gr.Error, as a Space whose model fails does
  /slow (text) -> audio           /speak after `slow_seconds`, as a busy ZeroGPU Space
  /echo (text) -> text            the text back, as a model that repeats what it was given would
  /depth (image) -> image         depth estimation: the image in grey levels
Every HTTP request's headers are recorded (so tests see which token went where), and every call's
inputs. Start with `with LoopbackSpace() as space:`; point a catalog entry's "space" at space.url.
"""
from __future__ import annotations

import time
from typing import Any

from tests.fakes.loopback import UvicornThread


class LoopbackSpace:
    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []      # every request's headers, in order
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.slow_seconds = 3.0
        self._serving = UvicornThread(self._config, force_exit=True, start_timeout=30, what="the loopback Space")
        self.url = self._serving.url

    # -- the app -------------------------------------------------------------------------------
    def _blocks(self) -> Any:
        import gradio as gr
        import numpy as np

        def speak(text: str) -> tuple[int, Any]:
            self.calls.append(("speak", (text,)))
            rate = 16000
            t = np.arange(int(rate * min(2.0, 0.05 * max(1, len(text))))) / rate
            return rate, (9000 * np.sin(2 * np.pi * 440 * t)).astype("int16")

        def describe(image: Any) -> str:
            self.calls.append(("describe", (image.size,)))
            return f"a picture of {image.size[0]} by {image.size[1]} pixels"

        def answer(image: Any, question: str) -> str:
            self.calls.append(("answer", (image.size, question)))
            return f"{question.rstrip('?')}: it is {image.size[0]} pixels wide"

        def broken(text: str) -> tuple[int, Any]:
            self.calls.append(("broken", (text,)))
            raise gr.Error("CUDA out of memory")

        def slow(text: str) -> tuple[int, Any]:
            self.calls.append(("slow", (text,)))
            time.sleep(self.slow_seconds)
            return speak(text)

        def echo(text: str) -> str:
            self.calls.append(("echo", (text,)))
            return text

        def depth(image: Any) -> Any:
            self.calls.append(("depth", (image.size,)))
            return image.convert("L")

        with gr.Blocks() as demo:
            text, question = gr.Textbox(label="Text"), gr.Textbox(label="Question")
            image = gr.Image(type="pil", label="Image")
            audio, words = gr.Audio(label="Speech"), gr.Textbox(label="Words")
            gr.Button("Speak").click(speak, [text], [audio], api_name="speak")
            gr.Button("Describe").click(describe, [image], [words], api_name="describe")
            gr.Button("Answer").click(answer, [image, question], [words], api_name="answer")
            gr.Button("Broken").click(broken, [text], [audio], api_name="broken")
            gr.Button("Slow").click(slow, [text], [audio], api_name="slow")
            gr.Button("Echo").click(echo, [text], [words], api_name="echo")
            gr.Button("Depth").click(depth, [image], [gr.Image(type="pil", label="Depth")], api_name="depth")
        return demo.queue()

    # -- serving -------------------------------------------------------------------------------
    def _config(self, port: int) -> Any:
        import gradio as gr
        import uvicorn
        from fastapi import FastAPI

        outer = FastAPI()

        @outer.middleware("http")
        async def record(request: Any, call_next: Any) -> Any:
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
            return await call_next(request)

        app = gr.mount_gradio_app(outer, self._blocks(), path="/", ssr_mode=False, mcp_server=False)
        return uvicorn.Config(app, host="127.0.0.1", log_level="warning", ws="none", lifespan="on")

    def __enter__(self) -> LoopbackSpace:
        self._serving.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._serving.close()

    def tokens_seen(self) -> set[str]:
        """Every value of a header that could carry a token, over all requests."""
        names = ("authorization", "x-hf-authorization", "x-hf-token", "x-zerogpu-token", "x-ip-token")
        return {h[n] for h in self.headers for n in names if n in h}
