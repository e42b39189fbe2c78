"""TLS for loopback test servers: a throwaway self-signed certificate naming the hosts a test points
at 127.0.0.1, trusted by the client side through SSL_CERT_FILE (which the openai SDK's own client and
Jarvis's pinned LLM connections both honour). Made with the openssl command line; tests skip without
it (and fail in CI: tests/prerequisites.py)."""
from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

from tests.prerequisites import require


def self_signed(directory: Path, dns_names: list[str]) -> tuple[Path, Path]:
    """(certificate.pem, key.pem) valid for `dns_names` and for 127.0.0.1."""
    require(bool(shutil.which("openssl")), "the openssl command", "apt-get install openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    names = ",".join([f"DNS:{n}" for n in dns_names] + ["IP:127.0.0.1"])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={dns_names[0]}", "-addext", f"subjectAltName={names}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def serve_tls(server, cert: Path, key: Path):
    """Make a not yet started socketserver-based fake (ScriptedLLM) answer over TLS; returns it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    inner = server._serving.httpd     # the fake's socketserver: its listening socket gets wrapped
    inner.socket = context.wrap_socket(inner.socket, server_side=True)
    return server
