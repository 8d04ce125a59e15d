"""The media worker: a process (or, on embedded defaults, a task inside the web process) that holds the
media of the lessons pinned to it, reached through the channel layer.

Web consumers send it ``media.*`` messages; it answers on the sender's channel. The media itself lives in
``live.media`` (no Django there); this module adds what needs Django: heartbeats, storing recording pieces,
ending a lesson whose teacher did not come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sys
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from .finalise import piece_storage_name
from .ice import ice_servers_for_worker
from .media.hub import LessonHub, MediaConfig, PieceInfo
from .media.sdp import InvalidOffer
from .services import (
    lesson_media_closed,
    lesson_publisher_lost,
    lessons_orphaned_mark,
    media_worker_heartbeat,
    media_worker_retire,
    recording_piece_add,
)

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 3.0
ORPHAN_SWEEP_BEATS = 10
# A publisher whose socket closed and who sent no video for this long has left.
SILENCE_SECONDS = 2.5


class MediaWorkerRuntime:
    def __init__(self, worker_id: str | None = None) -> None:
        self.worker_id = worker_id or uuid.uuid4().hex
        self.channel_name = ""
        self.hubs: dict[int, LessonHub] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ready = asyncio.Event()
        self._stopping = False

    # --- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> None:
        layer = get_channel_layer()
        assert layer is not None, "a channel layer is required"
        self.channel_name = await layer.new_channel(prefix="media-worker.")
        await self._heartbeat()
        self.ready.set()
        log.info("media worker %s listening on %s", self.worker_id, self.channel_name)
        beat = asyncio.create_task(self._heartbeat_loop())
        failures = 0
        try:
            while not self._stopping:
                try:
                    message = await layer.receive(self.channel_name)
                except (asyncio.CancelledError, KeyboardInterrupt):
                    raise
                except Exception:
                    # The channel layer is down (Redis restarting): keep every lesson's media running and
                    # listen again. Peers keep streaming; only signalling waits.
                    failures += 1
                    log.warning("media worker %s: channel layer receive failed (%d)", self.worker_id, failures)
                    await asyncio.sleep(min(0.2 * failures, 2.0))
                    continue
                failures = 0
                self._spawn(self._handle(message))
        finally:
            beat.cancel()
            await self.shutdown()

    async def shutdown(self) -> None:
        """Close every lesson's media (storing the last recording pieces) and leave the pool.

        A lesson whose teacher was publishing is not ended: the teacher's page publishes again to another
        worker, or the durable grace-period job ends the lesson.
        """
        if self._stopping and not self.hubs:
            return
        self._stopping = True
        for lesson_id, hub in list(self.hubs.items()):
            if hub.stats().get("publisher_connected"):
                with contextlib.suppress(Exception):
                    await database_sync_to_async(lesson_publisher_lost)(lesson_id=lesson_id)
            await self._close_lesson(lesson_id)
        with contextlib.suppress(Exception):
            await database_sync_to_async(media_worker_retire)(worker_id=self.worker_id)

    async def _heartbeat(self) -> None:
        peers = sum(int(hub.stats().get("peers", 0)) for hub in self.hubs.values())  # type: ignore[call-overload]
        await database_sync_to_async(media_worker_heartbeat)(
            worker_id=self.worker_id, channel_name=self.channel_name, lessons=len(self.hubs), peers=peers
        )

    async def _heartbeat_loop(self) -> None:
        beats = 0
        while True:
            try:
                if beats % ORPHAN_SWEEP_BEATS == 0:
                    # Lessons left on a worker that died (SIGKILL, lost host) end after the grace period even
                    # if nobody comes back to them.
                    await database_sync_to_async(lessons_orphaned_mark)(except_worker_id=self.worker_id)
            except Exception:
                log.exception("media worker orphan sweep failed")
            await asyncio.sleep(HEARTBEAT_SECONDS)
            beats += 1
            try:
                await self._heartbeat()
            except Exception:
                log.exception("media worker heartbeat failed")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- messages --------------------------------------------------------------------------------------

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        lesson_id = int(message.get("lesson", 0))
        peer = str(message.get("peer", ""))
        try:
            if kind == "media.publish":
                hub = self._hub(lesson_id)
                answer = await hub.publish(peer, message["sdp"])
                await self._reply(message, {"type": "media.answer", "peer": peer, "sdp": answer})
            elif kind == "media.watch":
                hub = self._hub(lesson_id)
                answer = await hub.watch(peer, message["sdp"], message.get("layer", "standard"))
                await self._reply(message, {"type": "media.answer", "peer": peer, "sdp": answer})
            elif kind == "media.layer" and lesson_id in self.hubs:
                await self.hubs[lesson_id].set_layer(peer, message["layer"])
            elif kind == "media.keyframe" and lesson_id in self.hubs:
                await self.hubs[lesson_id].request_keyframe(peer)
            elif kind == "media.remove" and lesson_id in self.hubs:
                await self.hubs[lesson_id].remove_peer(peer)
            elif kind == "media.socket_gone" and lesson_id in self.hubs:
                await self._publisher_socket_gone(lesson_id, peer)
            elif kind == "media.close_lesson":
                await self._close_lesson(lesson_id)
        except InvalidOffer as exc:
            await self._reply(message, {"type": "media.error", "peer": peer, "code": "bad_sdp", "message": str(exc)})
        except Exception as exc:
            log.exception("media worker failed on %s for lesson %s", kind, lesson_id)
            await self._reply(
                message, {"type": "media.error", "peer": peer, "code": "media_error", "message": str(exc)}
            )

    async def _publisher_socket_gone(self, lesson_id: int, peer: str) -> None:
        """The teacher's socket closed. If their stream stopped too (tab closed, laptop gone), they left: the
        peer is removed and the grace period starts. If media still flows, only signalling blipped."""
        hub = self.hubs.get(lesson_id)
        if hub is None or hub.publisher_peer_id != peer:
            return
        before = hub.stats().get("frames_in")
        await asyncio.sleep(SILENCE_SECONDS)
        if self.hubs.get(lesson_id) is hub and hub.publisher_peer_id == peer and hub.stats().get("frames_in") == before:
            await hub.remove_peer(peer)

    async def _reply(self, request: dict[str, Any], message: dict[str, Any]) -> None:
        reply_to = request.get("reply_to")
        if reply_to:
            layer = get_channel_layer()
            assert layer is not None
            await layer.send(reply_to, message)

    # --- lessons ---------------------------------------------------------------------------------------

    def _hub(self, lesson_id: int) -> LessonHub:
        hub = self.hubs.get(lesson_id)
        if hub is None:
            config = MediaConfig(
                ice_servers=ice_servers_for_worker(),
                keyframe_interval_s=settings.LIVE_KEYFRAME_INTERVAL_SECONDS,
                piece_seconds=settings.LIVE_RECORDING_PIECE_SECONDS,
            )

            async def on_piece(info: PieceInfo) -> None:
                await self._store_piece(lesson_id, info)

            async def on_publisher_lost() -> None:
                await database_sync_to_async(lesson_publisher_lost)(lesson_id=lesson_id)

            hub = LessonHub(
                f"lesson-{lesson_id}",
                spool_dir=settings.MEDIA_SPOOL_DIR,
                config=config,
                on_piece=on_piece,
                on_publisher_lost=on_publisher_lost,
            )
            self.hubs[lesson_id] = hub
        return hub

    async def _store_piece(self, lesson_id: int, info: PieceInfo) -> None:
        started = dt.datetime.fromtimestamp(info.started_at, tz=dt.UTC)
        ended = dt.datetime.fromtimestamp(info.ended_at, tz=dt.UTC)
        name = piece_storage_name(lesson_id=lesson_id, worker_id=self.worker_id, index=info.index, started_at=started)

        def save() -> str:
            with info.path.open("rb") as fh:
                stored = default_storage.save(name, File(fh))
            info.path.unlink(missing_ok=True)
            return stored

        stored = await sync_to_async(save, thread_sensitive=False)()
        await database_sync_to_async(recording_piece_add)(
            lesson_id=lesson_id, storage_name=stored, started_at=started, ended_at=ended, frames=info.frames
        )

    async def _close_lesson(self, lesson_id: int) -> None:
        hub = self.hubs.pop(lesson_id, None)
        if hub is not None:
            try:
                await hub.close()
            except Exception:
                log.exception("closing media of lesson %s failed", lesson_id)
        await database_sync_to_async(lesson_media_closed)(lesson_id=lesson_id, worker_id=self.worker_id)


_inprocess: MediaWorkerRuntime | None = None
_inprocess_task: asyncio.Task[None] | None = None


async def ensure_inprocess_worker() -> None:
    """On embedded defaults, start the media worker inside this (daphne) process once."""
    global _inprocess, _inprocess_task
    if not settings.MEDIA_WORKER_INPROCESS:
        return
    if _inprocess is None or _inprocess_task is None or _inprocess_task.done():
        _inprocess = MediaWorkerRuntime()
        _inprocess_task = asyncio.create_task(_inprocess.run())
        _stop_with_daphne(_inprocess)
    await _inprocess.ready.wait()


def _stop_with_daphne(runtime: MediaWorkerRuntime) -> None:
    """Close the in-process worker's peer connections when daphne shuts down.

    Otherwise aiortc's decoder threads keep the process alive after Ctrl-C while a lesson is live. Daphne runs
    on Twisted's asyncio reactor; without it (tests, other servers) there is nothing to hook.
    """
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    def stop() -> Deferred[None]:
        return Deferred.fromFuture(asyncio.ensure_future(runtime.shutdown()))

    # zope.interface methods have no self, so mypy shifts the arguments by one: the call itself is right.
    reactor.addSystemEventTrigger("before", "shutdown", stop)  # type: ignore[attr-defined,arg-type]
