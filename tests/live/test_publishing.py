"""The teacher publishes a real stream through the lesson WebSocket to the in-process media worker.

An aiortc peer plays the real sample clip, sends its offer as the browser does, applies the answer and
connects over this machine's network interface. Ending the lesson then makes the worker close the
lesson's media and hand its recording piece to storage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from channels.db import database_sync_to_async
from django.core.files.storage import default_storage
from django_tasks_db.models import DBTaskResult

import live.worker
from live.models import Lesson, RecordingPiece
from outreach.models import AuditEvent
from tests import factories
from tests.live.sockets import Opener, join, receive_close, receive_type
from tests.support.media import clip_path

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def poll(check: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"{what} did not happen within {within} s"
        await asyncio.sleep(0.05)


@database_sync_to_async
def _make_cast() -> tuple[int, Any, Any]:
    room = factories.classroom()
    viewer = factories.classroom_account(classroom_=room)
    lesson = factories.lesson(classrooms=[room])
    return lesson.pk, lesson.teacher, viewer


@database_sync_to_async
def _lesson(lesson_id: int) -> Lesson:
    return Lesson.objects.get(pk=lesson_id)


@database_sync_to_async
def _pieces(lesson_id: int) -> list[RecordingPiece]:
    return list(RecordingPiece.objects.filter(lesson_id=lesson_id))


async def test_the_teacher_publishes_a_real_stream_and_the_recording_reaches_storage(
    lesson_socket: Opener, settings: Any
) -> None:
    try:
        clip = clip_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    settings.MEDIA_WORKER_INPROCESS = True
    lesson_id, teacher, viewer = await _make_cast()
    teacher_ws, hello = await join(lesson_socket, lesson_id, teacher)
    viewer_ws, _ = await join(lesson_socket, lesson_id, viewer)
    assert hello["role"] == "publisher"

    player = MediaPlayer(str(clip))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        assert player.video is not None and player.audio is not None
        pc.addTrack(player.video)
        pc.addTrack(player.audio)
        await pc.setLocalDescription(await pc.createOffer())
        assert pc.localDescription is not None

        await teacher_ws.send_json_to({"v": 1, "type": "publish", "sdp": pc.localDescription.sdp})

        answer = await receive_type(teacher_ws, "answer", within=20)
        sdp = answer["sdp"]
        assert sdp.startswith("v=0")
        assert "m=video" in sdp and "m=audio" in sdp
        assert "a=fingerprint:sha-256" in sdp
        assert "a=candidate:" in sdp
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        assert (await receive_type(viewer_ws, "state"))["state"] == "live"

        lesson = await _lesson(lesson_id)
        runtime = live.worker._inprocess
        assert runtime is not None
        assert lesson.state == Lesson.State.LIVE
        assert lesson.media_worker_id == runtime.worker_id
        assert await database_sync_to_async(AuditEvent.objects.filter(action="lesson.started").count)() == 1

        async def connected() -> bool:
            return pc.connectionState == "connected"

        await poll(connected, within=15, what="the teacher's peer connection")

        async def recorded_layer_encodes() -> bool:
            # A second of video in, encoded by the standard layer's shared encoder (the recorder consumes it).
            hub = runtime.hubs.get(lesson_id)
            if hub is None:
                return False
            stats: dict[str, Any] = hub.stats()
            return stats["frames_in"] >= 25 and stats["frames_encoded"]["standard"] >= 25

        await poll(recorded_layer_encodes, within=15, what="the standard layer encoding the teacher's video")
        hub_stats: dict[str, Any] = runtime.hubs[lesson_id].stats()
        assert hub_stats["recording"] is True
        assert hub_stats["frames_encoded"]["light"] == 0  # nobody watches the light layer: it costs nothing

        await teacher_ws.send_json_to({"v": 1, "type": "end"})

        for ws in (teacher_ws, viewer_ws):
            assert (await receive_type(ws, "state"))["state"] == "ended"
            assert await receive_close(ws) == 1000

        async def media_closed() -> bool:
            return (await _lesson(lesson_id)).media_closed_at is not None

        await poll(media_closed, within=15, what="the worker closing the lesson's media")
    finally:
        await pc.close()
        for track in (player.video, player.audio):
            if track is not None:
                track.stop()

    pieces = await _pieces(lesson_id)
    assert pieces, "the worker stored no recording piece"
    assert sum(piece.frames for piece in pieces) > 0
    for piece in pieces:
        assert default_storage.exists(piece.storage_name)
        assert piece.ended_at > piece.started_at
    jobs = await database_sync_to_async(list)(DBTaskResult.objects.filter(task_path="live.tasks.finalise_recording"))
    assert [job.args_kwargs["args"] for job in jobs] == [[lesson_id]]
    assert lesson_id not in runtime.hubs


@database_sync_to_async
def _pin_to_a_silent_worker(lesson_id: int) -> str:
    """The lesson is live on a worker whose heartbeat is fresh but which will never answer (SIGKILLed)."""
    from django.utils import timezone

    from live.models import MediaWorker

    MediaWorker.objects.create(
        worker_id="silent-worker",
        channel_name="media-worker.silent!nobody-listens",
        started_at=timezone.now(),
        last_seen=timezone.now(),
    )
    Lesson.objects.filter(pk=lesson_id).update(
        state=Lesson.State.LIVE, started_at=timezone.now(), media_worker_id="silent-worker"
    )
    return "silent-worker"


async def test_an_offer_to_a_worker_that_never_answers_moves_the_lesson_to_a_live_worker(
    lesson_socket: Opener, settings: Any
) -> None:
    try:
        clip = clip_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    settings.MEDIA_WORKER_INPROCESS = True
    lesson_id, teacher, _viewer = await _make_cast()
    teacher_ws, _hello = await join(lesson_socket, lesson_id, teacher)  # starts the in-process worker
    silent = await _pin_to_a_silent_worker(lesson_id)

    player = MediaPlayer(str(clip))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        assert player.video is not None
        pc.addTrack(player.video)
        await pc.setLocalDescription(await pc.createOffer())
        assert pc.localDescription is not None
        sent = time.monotonic()
        await teacher_ws.send_json_to({"v": 1, "type": "publish", "sdp": pc.localDescription.sdp})

        answer = await receive_type(teacher_ws, "answer", within=10)
        waited = time.monotonic() - sent
    finally:
        await pc.close()
        if player.video is not None:
            player.video.stop()

    assert answer["sdp"].startswith("v=0")
    assert 1.0 < waited < 5.0, f"answered after {waited:.2f} s"  # the timeout, then the live worker's answer
    lesson = await _lesson(lesson_id)
    runtime = live.worker._inprocess
    assert runtime is not None
    assert lesson.media_worker_id == runtime.worker_id != silent


async def test_a_page_resumes_its_own_media_peer_after_its_socket_drops_but_never_another_users(
    lesson_socket: Opener,
) -> None:
    lesson_id, teacher, viewer = await _make_cast()
    first_ws, first = await join(lesson_socket, lesson_id, viewer)
    await first_ws.disconnect()

    again = await lesson_socket(lesson_id, user=viewer, query=f"peer={first['peer']}")
    connected, _ = await again.connect()
    assert connected
    assert (await receive_type(again, "hello"))["peer"] == first["peer"]

    stranger = await lesson_socket(lesson_id, user=teacher, query=f"peer={first['peer']}")
    connected, _ = await stranger.connect()
    assert connected
    assert (await receive_type(stranger, "hello"))["peer"] != first["peer"]

    garbage = await lesson_socket(lesson_id, user=viewer, query="peer=../../etc")
    connected, _ = await garbage.connect()
    assert connected
    assert (await receive_type(garbage, "hello"))["peer"] != first["peer"]
