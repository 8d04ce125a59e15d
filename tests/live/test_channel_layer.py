"""The Redis channel layer for real: what the scaled topology (N daphne + M media workers) relies on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels_redis.core import RedisChannelLayer

from live import events
from live.models import Lesson
from tests import factories
from tests.conftest import SOCKET_TIMEOUT
from tests.live.sockets import Opener, join, receive_close, receive_type, receive_viewers

pytestmark = [pytest.mark.asyncio, pytest.mark.services, pytest.mark.timeout(30)]


def _prefix() -> str:
    return f"jinshi-test-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture
async def two_processes(redis_url: str) -> AsyncIterator[tuple[RedisChannelLayer, RedisChannelLayer]]:
    """Two layer objects on one prefix: what a web process and a media worker process each hold."""
    prefix = _prefix()
    web = RedisChannelLayer(hosts=[redis_url], prefix=prefix, expiry=10)
    worker = RedisChannelLayer(hosts=[redis_url], prefix=prefix, expiry=10)
    yield web, worker
    await web.flush()
    for layer in (web, worker):
        await layer.close_pools()


async def test_a_message_sent_through_one_redis_layer_is_received_through_another(
    two_processes: tuple[RedisChannelLayer, RedisChannelLayer],
) -> None:
    web, worker = two_processes
    worker_channel = await worker.new_channel(prefix="media-worker.")
    reply_channel = await web.new_channel(prefix="specific.")

    await web.send(
        worker_channel,
        {"type": "media.publish", "lesson": 7, "peer": "p1", "sdp": "v=0", "reply_to": reply_channel},
    )
    request = await asyncio.wait_for(worker.receive(worker_channel), SOCKET_TIMEOUT)
    await worker.send(request["reply_to"], {"type": "media.answer", "peer": "p1", "sdp": "v=0 answer"})
    answer = await asyncio.wait_for(web.receive(reply_channel), SOCKET_TIMEOUT)

    assert request["lesson"] == 7
    assert request["sdp"] == "v=0"
    assert answer == {"type": "media.answer", "peer": "p1", "sdp": "v=0 answer"}


async def test_a_group_message_reaches_members_added_by_another_redis_layer(
    two_processes: tuple[RedisChannelLayer, RedisChannelLayer],
) -> None:
    web, worker = two_processes
    socket_a = await web.new_channel()
    socket_b = await web.new_channel()
    await web.group_add(events.lesson_group(7), socket_a)
    await web.group_add(events.lesson_group(7), socket_b)
    event = {"type": "lesson.event", "event": {"v": 1, "type": "state", "state": "ended"}}

    await worker.group_send(events.lesson_group(7), event)

    assert await asyncio.wait_for(web.receive(socket_a), SOCKET_TIMEOUT) == event
    assert await asyncio.wait_for(web.receive(socket_b), SOCKET_TIMEOUT) == event


@pytest.fixture
def redis_channel_layer(redis_url: str, settings: Any) -> dict[str, Any]:
    """Django's default channel layer switched to Redis (own key prefix); no in-process media worker."""
    config = {"hosts": [redis_url], "prefix": _prefix(), "capacity": 1000, "expiry": 30}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": config}}
    settings.MEDIA_WORKER_INPROCESS = False
    return config


@pytest.mark.django_db(transaction=True)
async def test_lesson_sockets_work_over_the_redis_channel_layer(
    redis_channel_layer: dict[str, Any], lesson_socket: Opener
) -> None:
    from channels.layers import get_channel_layer

    def make_cast() -> tuple[int, Any, Any]:
        room = factories.classroom()
        viewer = factories.classroom_account(classroom_=room, display_name="石渠县中学 七年级二班")
        lesson = factories.lesson(classrooms=[room])
        return lesson.pk, lesson.teacher, viewer

    lesson_id, teacher, viewer = await database_sync_to_async(make_cast)()
    assert type(get_channel_layer()).__name__ == "RedisChannelLayer"

    teacher_ws, _ = await join(lesson_socket, lesson_id, teacher)
    viewer_ws, _ = await join(lesson_socket, lesson_id, viewer)
    assert (await receive_viewers(teacher_ws, 1))["names"] == ["石渠县中学 七年级二班"]

    # Another process (its own layer object) speaks to the lesson's sockets through Redis.
    other_process = RedisChannelLayer(**redis_channel_layer)
    try:
        await other_process.group_send(
            events.lesson_group(lesson_id),
            {"type": "lesson.event", "event": {"v": 1, "type": "notice", "text": "下课前五分钟"}},
        )
        for ws in (teacher_ws, viewer_ws):
            assert (await receive_type(ws, "notice"))["text"] == "下课前五分钟"
    finally:
        await other_process.close_pools()

    await teacher_ws.send_json_to({"v": 1, "type": "end"})

    for ws in (teacher_ws, viewer_ws):
        assert (await receive_type(ws, "state"))["state"] == "ended"
        assert await receive_close(ws) == 1000
    lesson = await database_sync_to_async(Lesson.objects.get)(pk=lesson_id)
    assert lesson.state == Lesson.State.ENDED
