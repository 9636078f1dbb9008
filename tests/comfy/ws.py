"""Listen to a test server's websocket (``/ws?clientId=``) with the standard library only.

    with EventStream(client.base_url, client.client_id) as events:
        prompt_id = client.post_prompt(api_json)
        events.wait_for(lambda m: m["type"] == "execution_success", timeout=60)
        stats = events.of_type("gptimg.sampling_stats")

Read-only client: JSON (text) messages are kept in order, binary frames (previews) are counted.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any


class EventStream:
    """Background reader of one websocket connection; ``messages`` holds ``{"type", "data", "t"}`` dicts."""

    def __init__(self, base_url: str, client_id: str, timeout: float = 10.0) -> None:
        url = urllib.parse.urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.path = f"/ws?clientId={urllib.parse.quote(client_id)}"
        self.timeout = timeout
        self.messages: list[dict[str, Any]] = []
        self.binary_frames = 0
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def __enter__(self) -> EventStream:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"websocket handshake refused: {head.decode(errors='replace').splitlines()[0]}")
        sock.settimeout(None)
        self._sock = sock
        self._thread = threading.Thread(target=self._read_loop, name="comfy-ws", daemon=True)
        self._thread.start()
        # The server greets every new connection with a "status" message: once it is here, the
        # connection is registered and events for our client id will reach us.
        self.wait_for(lambda m: m["type"] == "status", timeout=self.timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        if self._thread is not None:
            self._thread.join(5)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        """The ``data`` of every message of that type received so far."""
        with self._cond:
            return [m["data"] for m in self.messages if m["type"] == event_type]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60.0) -> dict[str, Any]:
        """First message (``{"type", "data", "t"}``), old or new, for which ``predicate`` is true."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for m in self.messages[seen:]:
                    if predicate(m):
                        return m
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    types = [m["type"] for m in self.messages[-20:]]
                    raise TimeoutError(f"no matching websocket message after {timeout} s; last types: {types}")
                self._cond.wait(min(left, 0.5))

    def _read_loop(self) -> None:
        assert self._sock is not None
        stream = self._sock.makefile("rb")
        parts: list[bytes] = []
        opcode = 0
        try:
            while not self._closed:
                b0, b1 = _read_exact(stream, 2)
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack(">H", _read_exact(stream, 2))
                elif n == 127:
                    (n,) = struct.unpack(">Q", _read_exact(stream, 8))
                mask = _read_exact(stream, 4) if b1 & 0x80 else None
                payload = _read_exact(stream, n)
                if mask:
                    payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
                op = b0 & 0x0F
                if op == 0x8:  # close
                    break
                if op == 0x9:  # ping: answer with a (masked, as clients must) pong
                    self._send(0xA, payload)
                    continue
                if op in (0x1, 0x2):
                    opcode, parts = op, []
                parts.append(payload)
                if b0 & 0x80:  # final fragment
                    self._deliver(opcode, b"".join(parts))
        except (OSError, ConnectionError, ValueError):
            pass  # socket closed by __exit__ or by the server going away
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _deliver(self, opcode: int, payload: bytes) -> None:
        with self._cond:
            if opcode == 0x2:
                self.binary_frames += 1
            else:
                msg = json.loads(payload)
                self.messages.append({"type": msg.get("type"), "data": msg.get("data"), "t": time.monotonic()})
            self._cond.notify_all()

    def _send(self, opcode: int, payload: bytes) -> None:
        assert self._sock is not None and len(payload) < 126
        mask = os.urandom(4)
        body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        self._sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body)


def _read_exact(stream: Any, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) < n:
        raise ConnectionError("websocket closed")
    return data
