"""Helpers for lesson WebSocket tests: wait for a frame of a kind, for the close code, join a lesson."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractBaseUser

from tests.conftest import SOCKET_TIMEOUT

Opener = Callable[..., Awaitable[WebsocketCommunicator]]


async def receive_type(ws: WebsocketCommunicator, kind: str, within: float = SOCKET_TIMEOUT) -> dict[str, Any]:
    """The next frame of type ``kind``, skipping others (e.g. ``viewers`` updates)."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind!r} frame within {within} s"
        frame = await ws.receive_json_from(timeout=remaining)
        if frame.get("type") == kind:
            return frame


async def receive_viewers(ws: WebsocketCommunicator, count: int) -> dict[str, Any]:
    """The next ``viewers`` update that reports ``count`` viewers (earlier joins also send updates)."""
    deadline = time.monotonic() + SOCKET_TIMEOUT
    while True:
        frame = await receive_type(ws, "viewers", within=max(deadline - time.monotonic(), 0.01))
        if frame["count"] == count:
            return frame


async def receive_close(ws: WebsocketCommunicator, within: float = SOCKET_TIMEOUT) -> int | None:
    """Skip data frames until the server closes the socket; return the close code."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the socket was not closed within {within} s"
        message = await ws.receive_output(timeout=remaining)
        if message["type"] == "websocket.close":
            return message.get("code")


async def join(
    open_socket: Opener, lesson_id: int, user: AbstractBaseUser
) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    ws = await open_socket(lesson_id, user=user)
    connected, _ = await ws.connect(timeout=SOCKET_TIMEOUT)
    assert connected
    return ws, await receive_type(ws, "hello")


async def assert_open(ws: WebsocketCommunicator) -> None:
    await ws.send_json_to({"v": 1, "type": "ping"})
    assert await receive_type(ws, "pong") == {"v": 1, "type": "pong"}
