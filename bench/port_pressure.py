"""Pressure on the port (issue 16's findings 6, 7 and 9), measured on loopback against the API
served as `python -m jarvis serve` serves it, with the default limits. Offline; about 30 s.

    python -m bench.port_pressure

1. slow clients: 250 connections from one address that never finish their headers;
2. big bodies: 8 clients posting 28 MiB JSON bodies (base64 media) at once, while another client
   asks GET /v1/models every 20 ms: the worst wait of that client;
3. a stalling caller: 8 requests by one caller to an endpoint of their own that never answers,
   then another caller's request, then the first caller's clients disconnect.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import time

import httpx

from tests.fakes.llm_server import ScriptedLLM
from tests.test_hardening_server import Stall, api, raw_request, status_of

BEARER = {"Authorization": "Bearer tok-bob"}


def slow_clients(count: int = 250) -> None:
    with ScriptedLLM() as llm, api(llm.url) as live:
        socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", live.port))
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            socks.append(sock)
        refused = sum(status_of(s, 0.05) == 503 for s in socks)
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=10)
        started = time.perf_counter()
        status = other.get(f"{live.url}/v1/models", headers=BEARER).status_code
        served = time.perf_counter() - started
        open_at: dict[float, int] = {}
        for second in (5.0, 12.0):
            while time.perf_counter() - started < second:
                for s in socks:
                    with contextlib.suppress(OSError):
                        s.sendall(b"X")
                time.sleep(0.5)
            open_at[second] = sum(_still_open(s) for s in socks)
        print(f"slow clients: {count} connections that never finish their headers, from one address")
        print(f"  refused at once (503):              {refused}")
        print(f"  another address served:            {status} in {served:.3f} s")
        print(f"  still open after 5 s / 12 s:        {open_at[5.0]} / {open_at[12.0]} (header_timeout 10 s)")
        for s in socks:
            s.close()


def _still_open(sock: socket.socket) -> bool:
    sock.settimeout(0.02)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return True
    except OSError:
        return False
    return False


def big_bodies(clients: int = 8) -> None:
    payload = base64.b64encode(os.urandom(21 * 2**20)).decode()
    body = json.dumps({"model": "jarvis", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + payload}}]}]}).encode()
    headers = {**BEARER, "Content-Type": "application/json"}
    with ScriptedLLM() as llm, api(llm.url, max_runs_per_caller=clients) as live:
        stop, waits, codes = threading.Event(), [], []

        def poll() -> None:
            with httpx.Client() as c:
                while not stop.is_set():
                    started = time.perf_counter()
                    c.get(f"{live.url}/v1/models", headers=BEARER, timeout=60)
                    waits.append(time.perf_counter() - started)
                    time.sleep(0.02)

        def post() -> None:
            codes.append(httpx.post(f"{live.url}/v1/chat/completions", content=body, headers=headers,
                                    timeout=120).status_code)
        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.3)
        posters = [threading.Thread(target=post) for _ in range(clients)]
        started = time.perf_counter()
        for t in posters:
            t.start()
        for t in posters:
            t.join()
        took = time.perf_counter() - started
        stop.set()
        poller.join()
        print(f"big bodies: {clients} x {len(body) / 2**20:.0f} MiB JSON at once (answers: {sorted(set(codes))})")
        print(f"  all answered in:                    {took:.2f} s")
        print(f"  another client's worst wait:        {max(waits):.3f} s (median {sorted(waits)[len(waits) // 2]:.3f} s)")


def stalling_caller(requests: int = 8) -> None:
    ask = {"model": "jarvis", "messages": [{"role": "user", "content": "hi"}]}
    with ScriptedLLM(plan="[]", chat="hello") as llm, Stall() as stall, api(llm.url) as live:
        own = {"X-LLM-Base-URL": stall.url, "X-OpenAI-Api-Key": "sk-alice"}
        socks = [raw_request(live.port, ask, "tok-alice", own) for _ in range(requests)]
        answers = [status_of(s, 1.0) for s in socks]
        started = time.perf_counter()
        other = httpx.post(f"{live.url}/v1/chat/completions", json=ask, headers=BEARER, timeout=30).status_code
        other_took = time.perf_counter() - started
        for s in socks:
            s.close()
        started = time.perf_counter()
        again = 429
        while again == 429 and time.perf_counter() - started < 30:
            again = httpx.post(f"{live.url}/v1/chat/completions", json=ask, timeout=30,
                               headers={"Authorization": "Bearer tok-alice"}).status_code
        print(f"stalling caller: {requests} requests to an endpoint of their own that never answers")
        print(f"  refused at once (429):              {answers.count(429)}; waiting: {answers.count(None)}")
        print(f"  another caller answered:            {other} in {other_took:.3f} s")
        print(f"  after the first caller disconnects: answered {again} within {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    slow_clients()
    big_bodies()
    stalling_caller()
