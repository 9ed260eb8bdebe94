"""The loopback callback of ``sikker login --oidc``: a one-shot HTTP server on 127.0.0.1
that receives the identity provider's redirect (RFC 8252, native apps)."""

from __future__ import annotations

import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlsplit

import click

from sikker.errors import Unavailable

WAIT_S = 300
DONE_PAGE = b"<!doctype html><title>Sikker</title><p>Signed in. You can close this window."


def wait_for_callback(port: int, url: str, open_browser: bool = True) -> dict[str, str]:
    """Show or open ``url``, then return the query of the first request to /oidc/callback."""
    received: dict[str, str] = {}
    arrived = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/oidc/callback" or arrived.is_set():
                self.send_error(404)
                return
            received.update(parse_qsl(parts.query))
            arrived.set()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(DONE_PAGE)

        def log_message(self, format: str, *args: object) -> None:
            pass

    try:
        server = HTTPServer(("127.0.0.1", port), Handler)
    except OSError as e:
        raise Unavailable(f"cannot listen on 127.0.0.1:{port} for the sign-in callback ({e.strerror})") from e
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        click.echo(f"Open this URL to sign in:\n{url}", err=True)
        if open_browser:
            webbrowser.open(url)
        if not arrived.wait(WAIT_S):
            raise Unavailable(f"no sign-in callback within {WAIT_S} s")
    finally:
        server.shutdown()
        server.server_close()
    return received
