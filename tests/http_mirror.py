"""A loopback HTTP mirror of raw.githubusercontent.com serving ../shared/sources, for fetch tests.

URLs follow the upstream layout, `/<owner>/<repo>/<commit>/<path>`; only the pinned (owner, repo,
commit) triples in `REPOS` are served, each from its folder under the shared sources, so a recipe
URL with a wrong owner, repository or commit gets a 404. Paths are URL-decoded (file names hold
spaces and parentheses). `Range: bytes=N-` / `bytes=N-M` answers 206 with Content-Range (416 past
the end). For failure tests a mirror can serve other bytes for a path (`tamper`), send only the
first N bytes of a path's next response while announcing its full length (`cut`), and records
every request (`requests`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

UPSTREAM = "https://raw.githubusercontent.com/"

REPOS: dict[tuple[str, str, str], str] = {
    ("ACMISLab", "Astro-QA", "2b87acb9"): "Astro-QA",
    ("openai", "grade-school-math", "3101c7d5"): "grade-school-math",
    ("hiyouga", "LLaMA-Factory", "ff6d4d12"): "LLaMA-Factory",
}

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class Request:
    path: str
    """Decoded path, e.g. `/openai/grade-school-math/3101c7d5/grade_school_math/data/train.jsonl`."""
    range: str | None
    """The Range header as sent, or None."""


@dataclass
class Mirror:
    root: Path
    url: str = ""
    """`http://127.0.0.1:PORT/`, set once the server listens."""
    tamper: dict[str, bytes] = field(default_factory=dict)
    """Decoded request path -> bytes served instead of the file's."""
    cut: dict[str, int] = field(default_factory=dict)
    """Decoded request path -> bytes actually sent on its next response (one-shot)."""
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def mirrors(self) -> dict[str, str]:
        return {UPSTREAM: self.url}

    @property
    def mirror_option(self) -> str:
        return f"{UPSTREAM}={self.url}"

    def local_path(self, request_path: str) -> Path | None:
        parts = request_path.lstrip("/").split("/", 3)
        if len(parts) < 4 or (folder := REPOS.get((parts[0], parts[1], parts[2]))) is None:
            return None
        if any(p in ("", ".", "..") for p in parts[3].split("/")):
            return None
        path = self.root / folder / parts[3]
        return path if path.is_file() else None

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.tamper.clear()
            self.cut.clear()


def _handler(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            header_range = self.headers.get("Range")
            with mirror.lock:
                mirror.requests.append(Request(path, header_range))
                body = mirror.tamper.get(path)
                send_only = mirror.cut.pop(path, None)
            if body is None:
                local = mirror.local_path(path)
                if local is None:
                    return self._empty(404)
                body = local.read_bytes()
            total = len(body)
            status, start, end = 200, 0, total
            if header_range is not None:
                match = _RANGE.match(header_range.strip())
                if match is None:
                    return self._empty(400)
                start = int(match.group(1))
                end = min(int(match.group(2)) + 1, total) if match.group(2) else total
                if start >= total or start >= end:
                    return self._empty(416, {"Content-Range": f"bytes */{total}"})
                status = 206
            chunk = body[start:end]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{total}")
            if send_only is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            if send_only is not None:
                self.wfile.write(chunk[:send_only])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)

        def _empty(self, code: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def serve(root: Path) -> Iterator[Mirror]:
    """Serve `root` (the shared sources) on 127.0.0.1, on a free port, until the block ends."""
    mirror = Mirror(Path(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror))
    server.daemon_threads = True
    mirror.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, name="http-mirror", daemon=True)
    thread.start()
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
