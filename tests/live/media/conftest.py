"""Fixtures for the media engine tests.

Every test here drives real aiortc peers over this machine's network
interface (aioice ignores loopback) and plays a real clip, so each test
carries its own ``pytest.mark.timeout``; none needs a database or a service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from live.media import LessonHub, MediaConfig, PieceInfo
from tests.support.media import decode_clip
from tests.support.rtc import Publisher, Viewer


@pytest.fixture(scope="session", autouse=True)
def decoded_clip() -> None:
    # Decode the clip once per session (about 1 s), outside any test's timing.
    decode_clip(width=640, height=360)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


HubFactory = Callable[..., LessonHub]


@pytest_asyncio.fixture
async def make_hub(spool_dir: Path) -> AsyncIterator[HubFactory]:
    """Create hubs that are always closed at the end of the test (no leaked connections)."""
    hubs: list[LessonHub] = []

    def factory(
        lesson_key: str = "lesson-1",
        *,
        on_piece: Callable[[PieceInfo], Awaitable[None]] | None = None,
        on_viewer_change: Callable[[], Awaitable[None]] | None = None,
        on_publisher_lost: Callable[[], Awaitable[None]] | None = None,
        **config: Any,
    ) -> LessonHub:
        hub = LessonHub(
            lesson_key,
            spool_dir=spool_dir,
            config=MediaConfig(**config),
            on_piece=on_piece,
            on_viewer_change=on_viewer_change,
            on_publisher_lost=on_publisher_lost,
        )
        hubs.append(hub)
        return hub

    yield factory
    for hub in hubs:
        await hub.close()


class Peers:
    """Teachers and classrooms of one test, all closed at teardown even when the test fails.

    An aiortc peer left open keeps its decoder threads waiting, and the
    interpreter would wait for them at exit.
    """

    def __init__(self) -> None:
        self._peers: list[Publisher | Viewer] = []

    async def publish(
        self, hub: LessonHub, peer_id: str = "teacher", *, width: int = 640, height: int = 360
    ) -> Publisher:
        publisher = Publisher(width=width, height=height)
        self._peers.append(publisher)
        await publisher.connect(lambda sdp: hub.publish(peer_id, sdp))
        return publisher

    async def watch(self, hub: LessonHub, peer_id: str, layer: str = "standard", *, mdns: bool = False) -> Viewer:
        viewer = Viewer(mdns=mdns)
        self._peers.append(viewer)
        await viewer.connect(lambda sdp: hub.watch(peer_id, sdp, layer))
        return viewer

    def track(self, viewer: Viewer) -> Viewer:
        self._peers.append(viewer)
        return viewer

    async def close_all(self) -> None:
        for peer in self._peers:
            await peer.close()


@pytest_asyncio.fixture
async def peers() -> AsyncIterator[Peers]:
    registry = Peers()
    yield registry
    await registry.close_all()
