"""A real nginx for tests that need nginx's own access log: started from its binary with a private prefix
on a free port, stopped on exit. ``run_nginx`` takes the ``http`` block's own directives; ``nginx_proxy``
is the common case, a reverse proxy in front of a local origin (``serve_origin`` runs one from a
``QuietOrigin`` handler)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import free_port

NGINX = "/usr/sbin/nginx"


class QuietOrigin(BaseHTTPRequestHandler):
    """An origin handler base for the nginx tests: ``reply`` sends a plain-text body; no request logging."""

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_origin(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve ``handler`` on 127.0.0.1 (a thread per request) while the block runs; yields its port."""
    origin = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    origin.daemon_threads = True
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    try:
        yield origin.server_address[1]
    finally:
        origin.shutdown()
        origin.server_close()


@contextmanager
def run_nginx(prefix: Path, http_block: Callable[[int], str]) -> Iterator[int]:
    """Run nginx under ``prefix`` with ``http_block(port)`` inside its ``http {}`` (temp paths are set
    here); yields the free port it was given once nginx listens on it. Stopped with SIGTERM (fast
    shutdown; access logs are written unbuffered)."""
    assert Path(NGINX).exists(), f"{NGINX} missing: install nginx-light"
    port = free_port()
    (prefix / "tmp").mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
{http_block(port)}
}}
""")
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                assert time.time() < deadline, "nginx did not start listening"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def nginx_proxy(prefix: Path, upstream_port: int, log_format: str, keepalive: int = 16) -> Iterator[int]:
    """Run nginx proxying 127.0.0.1:<port> to the origin on ``upstream_port``, logging every request to
    ``prefix/access.log`` in ``log_format``; yields the port it listens on."""
    def http_block(port: int) -> str:
        return f"""
    log_format timed '{log_format}';
    upstream origin {{ server 127.0.0.1:{upstream_port}; keepalive {keepalive}; }}
    server {{
        listen 127.0.0.1:{port};
        access_log {prefix}/access.log timed;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{ proxy_pass http://origin; }}
    }}"""

    with run_nginx(prefix, http_block) as port:
        yield port
