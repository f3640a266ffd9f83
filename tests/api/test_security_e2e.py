"""Hardening against a real daphne (tests/server.py): bodies whose Content-Length lies, bodies
without one, rate limits on the API's own middleware chain, secrets kept out of the access log,
and the token WebSocket route with Daphne's frame size limit — all over real sockets."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

LIMIT = 4096
OCTETS = "application/octet-stream"


@pytest.fixture(scope="module")
def hardened(server_db: str) -> Iterator[Server]:
    """Small limits so tests can pass them; its own process, so its log is ours to read."""
    with Server(
        server_db,
        {
            "STREAMDASH_MAX_REQUEST_BYTES": str(LIMIT),
            # One token back every 20 s: the rate-limit test's 45 requests may take several
            # seconds on a loaded machine without earning the 41st its way in.
            "STREAMDASH_RATE_LIMIT_PER_SECOND": "0.05",
            "STREAMDASH_RATE_LIMIT_BURST": "40",
            "STREAMDASH_PUBLIC_DS": "0",
        },
    ) as live:
        yield live


@pytest.fixture(scope="module")
def key(hardened: Server) -> str:
    return hardened.create_project()


@pytest.fixture
def stream_path(hardened: Server, key: str) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    run = httpx.post(f"{hardened.url}/api/v1/runs", json={"task_id": "sec"}, headers=headers)
    path = f"/api/v1/runs/{run.json()['id']}/streams/bytes"
    created = httpx.put(hardened.url + path, headers={**headers, "Content-Type": OCTETS})
    assert created.status_code == 201
    return path


def _read(server: Server, key: str, path: str) -> bytes:
    response = httpx.get(
        f"{server.url}{path}?offset=-1", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200
    return response.content


def _raw(server: Server, data: bytes, *, wait: float = 3.0, half_close: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(wait)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            pass
    return out


def _head(path: str, key: str, length: int | None, extra: str = "") -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {key}",
        f"Content-Type: {OCTETS}",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def _statuses(raw: bytes) -> list[int]:
    return [int(line.split()[1]) for line in raw.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def test_e2e_body_larger_than_content_length_never_becomes_data(hardened, key, stream_path):
    """Twisted frames the request by its Content-Length: the declared 5 bytes are the request,
    and the surplus is parsed as a next request, which is refused with 400 and the connection
    closed. The surplus never reaches a stream."""
    raw = _raw(hardened, _head(stream_path, key, 5) + b"helloSURPLUS-NOT-A-REQUEST\r\n\r\n")
    assert _statuses(raw) == [204, 400]
    assert _read(hardened, key, stream_path) == b"hello"
    assert b"SURPLUS" not in _read(hardened, key, stream_path)


def test_e2e_body_shorter_than_content_length_is_not_appended(hardened, key, stream_path):
    raw = _raw(hardened, _head(stream_path, key, 100) + b"only-ten!!", half_close=True)
    assert 204 not in _statuses(raw)
    assert _read(hardened, key, stream_path) == b""


def test_e2e_content_length_over_the_limit_is_413(hardened, key, stream_path) -> None:
    raw = _raw(hardened, _head(stream_path, key, LIMIT + 1) + b"x" * (LIMIT + 1))
    assert _statuses(raw) == [413]
    assert b'"too_large"' in raw
    assert b"nosniff" in raw.lower()


def test_e2e_chunked_body_over_the_limit_is_413(hardened, key, stream_path) -> None:
    """No Content-Length at all (chunked): the limit still holds, counted while reading."""

    def body() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    response = httpx.post(
        hardened.url + stream_path,
        content=body(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": OCTETS},
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"]["limit"] == LIMIT
    assert _read(hardened, key, stream_path) == b""

    def small() -> Iterator[bytes]:
        yield b"a" * 1000
        yield b"b" * 1000

    ok = httpx.post(
        hardened.url + stream_path,
        content=small(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": OCTETS},
    )
    assert ok.status_code == 204


def test_e2e_rate_limit_on_the_api_chain(hardened: Server) -> None:
    other = hardened.create_project()
    headers = {"Authorization": f"Bearer {other}"}
    with httpx.Client(base_url=hardened.url, headers=headers) as client:
        statuses = [
            client.post("/api/v1/runs", json={"task_id": "t"}).status_code for _ in range(45)
        ]
        assert statuses[:40] == [201] * 40
        limited = client.post("/api/v1/runs", json={"task_id": "t"})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
        assert client.get("/api/v1/runs").status_code == 200  # reads are not limited


def test_e2e_token_never_in_the_access_log(hardened, key, stream_path) -> None:
    secret = "eyJhbGciOiJIUzI1NiJ9.eyJzZWNyZXQiOjF9.c2lnbmF0dXJlLXNlY3JldA"
    httpx.get(f"{hardened.url}{stream_path}?offset=-1&token={secret}")
    httpx.get(f"{hardened.url}{stream_path}?offset=-1", headers={"Authorization": f"Bearer {key}"})
    time.sleep(0.5)
    log = Path(hardened.log.name).read_text()
    assert "offset=-1&token=[redacted]" in log  # the line is there, the secret is not
    assert secret not in log
    assert "c2lnbmF0dXJl" not in log
    assert key not in log


# --- WebSocket over a real socket ----------------------------------------------------------


def _ws_connect(server: Server, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    nonce = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionError("closed")
        data += part
    return data


def _ws_frame(sock: socket.socket) -> tuple[int, bytes]:
    first, second = _recv_exact(sock, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _recv_exact(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _recv_exact(sock, 8))
    return first & 0x0F, _recv_exact(sock, length)


def _ws_send(sock: socket.socket, payload: bytes, opcode: int = 1) -> None:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def _close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0]


@pytest.fixture
def token_for(hardened: Server, key: str, stream_path: str) -> str:
    run_id = stream_path.split("/")[4]
    minted = httpx.post(
        f"{hardened.url}/api/v1/tokens",
        json={"scopes": [f"read:runs:{run_id}"], "ttl": 2},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert minted.status_code == 201
    return minted.json()["token"]


def test_e2e_ws_token_route_reads_and_ends_at_token_expiry(hardened, stream_path, token_for):
    path = stream_path.replace("/api/v1/", "/ws/v1/")
    began = time.monotonic()
    sock = _ws_connect(hardened, f"{path}?token={token_for}")
    with sock:
        frames = []
        while True:
            opcode, payload = _ws_frame(sock)
            if opcode == 8:
                break
            frames.append(json.loads(payload))
    assert frames[0]["type"] == "chunks"
    assert frames[0]["up_to_date"] is True
    assert frames[-1] == {"type": "end", "reason": "token_expired"}
    assert _close_code(payload) == 4401
    assert time.monotonic() - began < 5


def test_e2e_ws_token_route_refuses_bad_token(hardened, stream_path) -> None:
    path = stream_path.replace("/api/v1/", "/ws/v1/")
    with _ws_connect(hardened, f"{path}?token=forged.token.value") as sock:
        opcode, payload = _ws_frame(sock)
        assert json.loads(payload)["error"]["code"] == "unauthorized"
        opcode, payload = _ws_frame(sock)
        assert opcode == 8
        assert _close_code(payload) == 4401


def test_e2e_ws_oversize_frame_is_refused_by_daphne(hardened, key, stream_path) -> None:
    """Daphne's --websocket-max-frame-size (1 MiB by default in daphne ≥ 4.2, set explicitly
    where the server is launched) closes the socket with 1009 instead of buffering."""
    path = stream_path.replace("/api/v1/", "/ws/v1/")
    run_id = stream_path.split("/")[4]
    token = httpx.post(
        f"{hardened.url}/api/v1/tokens",
        json={"scopes": [f"read:runs:{run_id}"]},
        headers={"Authorization": f"Bearer {key}"},
    ).json()["token"]
    with _ws_connect(hardened, f"{path}?token={token}") as sock:
        _ws_frame(sock)  # the first chunks frame
        _ws_send(sock, b"x" * (2 * 1024 * 1024))
        codes = []
        try:
            while True:
                opcode, payload = _ws_frame(sock)
                if opcode == 8:
                    codes.append(_close_code(payload))
                    break
        except (ConnectionError, OSError):
            codes.append(None)
    assert codes in ([1009], [None])
