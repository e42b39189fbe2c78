"""Writes the small example files the web app offers (run once: `python examples/make_examples.py`).

Images are drawn with PIL; the recording is spoken by espeak-ng when it is installed, else a
short tone stands in (the example then shows the workflow, not a meaningful transcript)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent


def balls(path: Path, centers: list[tuple[int, int]], colors: list[str]) -> None:
    img = Image.new("RGB", (256, 192), "#7cc36e")
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 256, 60], fill="#9fd3f5")
    for (x, y), color in zip(centers, colors):
        d.ellipse([x - 22, y - 22, x + 22, y + 22], fill=color, outline="black", width=2)
    img.save(path, optimize=True)


def street(path: Path) -> None:
    img = Image.new("RGB", (256, 192), "#9fd3f5")
    d = ImageDraw.Draw(img)
    d.ellipse([200, 14, 236, 50], fill="#ffd23f")
    d.rectangle([0, 140, 256, 192], fill="#6b6b6b")
    d.rectangle([30, 80, 110, 140], fill="#c0504d")
    d.polygon([(24, 82), (70, 44), (116, 82)], fill="#7f3f3f")
    d.rectangle([60, 108, 80, 140], fill="#5b3a1e")
    d.rectangle([170, 100, 180, 140], fill="#6d4c2f")
    d.ellipse([148, 60, 202, 110], fill="#2e8b57")
    d.rectangle([120, 120, 160, 150], fill="#1f4e9c")
    d.ellipse([122, 144, 134, 156], fill="black")
    d.ellipse([146, 144, 158, 156], fill="black")
    img.save(path, optimize=True)


def speech(path: Path, text: str) -> None:
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "speech.wav"
            subprocess.run([espeak, "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
            audio, rate = sf.read(raw, dtype="float32")
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        import soxr
        audio = soxr.resample(audio, rate, 16000)
    else:
        t = np.linspace(0, 1.5, 24000, endpoint=False)
        audio = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, audio, 16000, subtype="PCM_16")


def main() -> None:
    balls(HERE / "shapes-a.png", [(50, 120), (130, 100), (200, 140)], ["#e03131", "#f08c00", "#1971c2"])
    balls(HERE / "shapes-b.png", [(80, 110), (180, 120)], ["#f8f9fa", "#e03131"])
    street(HERE / "street.png")
    speech(HERE / "hello.wav", "Hello, the weather is lovely today. Shall we go for a walk in the park?")
    for p in sorted(HERE.iterdir()):
        print(p.name, p.stat().st_size)


if __name__ == "__main__":
    main()
