"""The lesson WebSocket through the real ASGI stack: origin check, session auth, router, consumer, services.

Each test connects real sessions (``force_login`` cookies) and checks what the browser receives and what
the database holds afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django_tasks_db.models import DBTaskResult

from live.models import Attendance, Lesson
from outreach.models import AuditEvent
from tests import factories
from tests.conftest import SOCKET_TIMEOUT
from tests.live.sockets import Opener, assert_open, join, receive_close, receive_type, receive_viewers

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


# Shaped like an offer (validate_offer accepts it); never reaches a media worker in these tests.
OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"


@dataclass
class Cast:
    lesson_id: int
    teacher: AbstractBaseUser
    classroom: AbstractBaseUser
    audience_teacher: AbstractBaseUser
    coordinator: AbstractBaseUser
    outsider_classroom: AbstractBaseUser
    outsider_teacher: AbstractBaseUser
    no_profile: AbstractBaseUser


@pytest.fixture
def cast(transactional_db: None) -> Cast:
    room = factories.classroom()
    teacher = factories.teacher(display_name="王晓梅老师")
    classroom = factories.classroom_account(classroom_=room, display_name="石渠一小 四年级一班")
    audience_teacher = factories.teacher(display_name="扎西老师")
    lesson = factories.lesson(teacher_=teacher, classrooms=[room], teachers=[audience_teacher])
    return Cast(
        lesson_id=lesson.pk,
        teacher=teacher,
        classroom=classroom,
        audience_teacher=audience_teacher,
        coordinator=factories.coordinator(display_name="刘协调员"),
        outsider_classroom=factories.classroom_account(),
        outsider_teacher=factories.teacher(),
        no_profile=factories.user(),
    )


def _snapshot(lesson_id: int) -> dict[str, Any]:
    lesson = Lesson.objects.get(pk=lesson_id)
    return {
        "lesson": (lesson.state, lesson.started_at, lesson.ended_at, lesson.media_worker_id, lesson.recording_state),
        "attendance": list(Attendance.objects.filter(lesson_id=lesson_id).values_list("connection_id", "left_at")),
        "audit": AuditEvent.objects.count(),
        "jobs": DBTaskResult.objects.count(),
    }


snapshot = database_sync_to_async(_snapshot)


@database_sync_to_async
def _lesson(lesson_id: int) -> Lesson:
    return Lesson.objects.get(pk=lesson_id)


@database_sync_to_async
def _open_attendance(lesson_id: int) -> list[tuple[int, str]]:
    rows = Attendance.objects.filter(lesson_id=lesson_id, left_at__isnull=True).order_by("joined_at")
    return [(row.user_id, row.role) for row in rows]


# --- who may connect -----------------------------------------------------------------------------------


async def test_an_anonymous_socket_is_accepted_then_closed_with_4401(lesson_socket: Opener, cast: Cast) -> None:
    ws = await lesson_socket(cast.lesson_id)

    connected, _ = await ws.connect(timeout=SOCKET_TIMEOUT)

    assert connected  # accepted first, so that the browser sees the close code
    assert await receive_close(ws) == 4401
    assert await _open_attendance(cast.lesson_id) == []


@pytest.mark.parametrize("who", ["outsider_classroom", "outsider_teacher", "no_profile"])
async def test_a_user_outside_the_audience_is_refused_with_4403(lesson_socket: Opener, cast: Cast, who: str) -> None:
    ws = await lesson_socket(cast.lesson_id, user=getattr(cast, who))

    connected, _ = await ws.connect(timeout=SOCKET_TIMEOUT)

    assert connected
    assert await receive_close(ws) == 4403
    assert await _open_attendance(cast.lesson_id) == []


async def test_an_unknown_lesson_is_closed_with_4404(lesson_socket: Opener, cast: Cast) -> None:
    ws = await lesson_socket(cast.lesson_id + 1000, user=cast.coordinator)

    connected, _ = await ws.connect(timeout=SOCKET_TIMEOUT)

    assert connected
    assert await receive_close(ws) == 4404


@pytest.mark.parametrize("origin", [b"http://evil.example", b"https://127.0.0.1.evil.example", None])
async def test_a_foreign_or_missing_origin_is_rejected_before_anything_happens(
    lesson_socket: Opener, cast: Cast, origin: bytes | None
) -> None:
    ws = await lesson_socket(cast.lesson_id, user=cast.classroom, origin=origin)

    connected, _ = await ws.connect(timeout=SOCKET_TIMEOUT)

    assert not connected
    assert await _open_attendance(cast.lesson_id) == []


@pytest.mark.parametrize("who", ["classroom", "audience_teacher", "coordinator"])
async def test_the_audience_and_coordinators_connect_as_viewers(lesson_socket: Opener, cast: Cast, who: str) -> None:
    user = getattr(cast, who)

    _ws, hello = await join(lesson_socket, cast.lesson_id, user)

    assert hello["v"] == 1
    assert hello["role"] == "viewer"
    assert hello["lesson"] == {"id": cast.lesson_id, "title": "分数的初步认识", "state": "scheduled"}
    assert hello["iceServers"] == []  # no STUN/TURN configured, and never Google's
    assert hello["viewers"]["count"] == 1
    assert isinstance(hello["peer"], str) and hello["peer"]
    assert await _open_attendance(cast.lesson_id) == [(user.pk, "viewer")]


async def test_opening_an_ended_lesson_says_so_and_writes_no_attendance(lesson_socket: Opener, cast: Cast) -> None:
    await database_sync_to_async(Lesson.objects.filter(pk=cast.lesson_id).update)(state=Lesson.State.ENDED)

    _ws, hello = await join(lesson_socket, cast.lesson_id, cast.classroom)

    assert hello["lesson"]["state"] == "ended"
    rows = await database_sync_to_async(Attendance.objects.filter(lesson_id=cast.lesson_id).count)()
    assert rows == 0


async def test_the_lessons_teacher_connects_as_publisher(lesson_socket: Opener, cast: Cast) -> None:
    _ws, hello = await join(lesson_socket, cast.lesson_id, cast.teacher)

    assert hello["role"] == "publisher"
    assert hello["viewers"] == {"count": 0, "names": []}
    assert await _open_attendance(cast.lesson_id) == [(cast.teacher.pk, "publisher")]


# --- messages ------------------------------------------------------------------------------------------


async def test_ping_gets_pong(lesson_socket: Opener, cast: Cast) -> None:
    ws, _hello = await join(lesson_socket, cast.lesson_id, cast.classroom)

    await assert_open(ws)


BAD_MESSAGES: dict[str, tuple[str, str]] = {
    "malformed JSON": ("{not json", "bad_message"),
    "a JSON list": ("[1, 2]", "bad_message"),
    "a JSON string": ('"publish"', "bad_message"),
    "a wrong version": (json.dumps({"v": 2, "type": "ping"}), "bad_version"),
    "no version": (json.dumps({"type": "ping"}), "bad_version"),
    "no type": (json.dumps({"v": 1}), "bad_message"),
    "an unknown type": (json.dumps({"v": 1, "type": "dance"}), "unknown_type"),
    "publish without sdp": (json.dumps({"v": 1, "type": "publish"}), "bad_message"),
    "publish with a numeric sdp": (json.dumps({"v": 1, "type": "publish", "sdp": 42}), "bad_message"),
    "publish with an sdp over 64 KB": (
        json.dumps({"v": 1, "type": "publish", "sdp": OFFER + "a=x-pad:" + "a" * (64 * 1024) + "\r\n"}),
        "too_large",
    ),
    "a frame far over the limit": (json.dumps({"v": 1, "type": "ping", "pad": "a" * 200_000}), "too_large"),
    "publish with something that is not SDP": (
        json.dumps({"v": 1, "type": "publish", "sdp": "hello"}),
        "bad_sdp",
    ),
    "watch with an unknown layer": (
        json.dumps({"v": 1, "type": "watch", "sdp": OFFER, "layer": "ultra"}),
        "bad_message",
    ),
    "a layer switch before the lesson is live": (
        json.dumps({"v": 1, "type": "layer", "layer": "light"}),
        "lesson_not_live",
    ),
    "a keyframe request before the lesson is live": (json.dumps({"v": 1, "type": "keyframe"}), "lesson_not_live"),
}


@pytest.mark.parametrize("text, code", BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
async def test_a_bad_message_gets_an_error_frame_and_changes_nothing(
    lesson_socket: Opener, cast: Cast, text: str, code: str
) -> None:
    ws, _hello = await join(lesson_socket, cast.lesson_id, cast.teacher)
    before = await snapshot(cast.lesson_id)

    await ws.send_to(text_data=text)

    error = await receive_type(ws, "error")
    assert error["code"] == code
    assert error["message"]
    await assert_open(ws)
    assert await snapshot(cast.lesson_id) == before


async def test_a_binary_frame_gets_an_error_frame(lesson_socket: Opener, cast: Cast) -> None:
    ws, _hello = await join(lesson_socket, cast.lesson_id, cast.classroom)

    await ws.send_to(bytes_data=b"\x00\x01")

    assert (await receive_type(ws, "error"))["code"] == "bad_message"
    await assert_open(ws)


async def test_a_viewer_cannot_publish_and_the_lesson_stays_scheduled(lesson_socket: Opener, cast: Cast) -> None:
    factory = database_sync_to_async(factories.media_worker)
    await factory()
    ws, _hello = await join(lesson_socket, cast.lesson_id, cast.classroom)
    before = await snapshot(cast.lesson_id)

    await ws.send_json_to({"v": 1, "type": "publish", "sdp": OFFER})

    assert (await receive_type(ws, "error"))["code"] == "not_allowed"
    await assert_open(ws)
    assert await snapshot(cast.lesson_id) == before
    assert (await _lesson(cast.lesson_id)).state == Lesson.State.SCHEDULED


async def test_watching_a_lesson_that_is_not_live_is_refused(lesson_socket: Opener, cast: Cast) -> None:
    ws, _hello = await join(lesson_socket, cast.lesson_id, cast.classroom)

    await ws.send_json_to({"v": 1, "type": "watch", "sdp": OFFER, "layer": "light"})

    assert (await receive_type(ws, "error"))["code"] == "lesson_not_live"
    await assert_open(ws)


async def test_a_viewer_cannot_end_the_lesson(lesson_socket: Opener, cast: Cast) -> None:
    ws, _hello = await join(lesson_socket, cast.lesson_id, cast.audience_teacher)
    before = await snapshot(cast.lesson_id)

    await ws.send_json_to({"v": 1, "type": "end"})

    assert (await receive_type(ws, "error"))["code"] == "not_allowed"
    await assert_open(ws)
    assert await snapshot(cast.lesson_id) == before


@pytest.mark.parametrize("who", ["teacher", "coordinator"])
async def test_ending_the_lesson_tells_everyone_and_closes_their_sockets(
    lesson_socket: Opener, cast: Cast, who: str
) -> None:
    teacher_ws, _ = await join(lesson_socket, cast.lesson_id, cast.teacher)
    classroom_ws, _ = await join(lesson_socket, cast.lesson_id, cast.classroom)
    coordinator_ws, _ = await join(lesson_socket, cast.lesson_id, cast.coordinator)
    ender = teacher_ws if who == "teacher" else coordinator_ws

    await ender.send_json_to({"v": 1, "type": "end"})

    for ws in (teacher_ws, classroom_ws, coordinator_ws):
        assert await receive_type(ws, "state") == {"v": 1, "type": "state", "state": "ended"}
        assert await receive_close(ws) == 1000
    lesson = await _lesson(cast.lesson_id)
    assert lesson.state == Lesson.State.ENDED
    assert lesson.end_reason == "teacher"
    assert await _open_attendance(cast.lesson_id) == []


# --- live updates and attendance ---------------------------------------------------------------------


async def test_the_teacher_and_coordinators_see_viewer_names_and_viewers_only_see_the_count(
    lesson_socket: Opener, cast: Cast
) -> None:
    teacher_ws, _ = await join(lesson_socket, cast.lesson_id, cast.teacher)

    classroom_ws, classroom_hello = await join(lesson_socket, cast.lesson_id, cast.classroom)

    to_teacher = await receive_viewers(teacher_ws, 1)
    assert to_teacher == {"v": 1, "type": "viewers", "count": 1, "names": ["石渠一小 四年级一班"]}
    assert classroom_hello["viewers"] == {"count": 1, "names": []}
    to_classroom = await receive_viewers(classroom_ws, 1)
    assert to_classroom == {"v": 1, "type": "viewers", "count": 1, "names": []}

    _coordinator_ws, coordinator_hello = await join(lesson_socket, cast.lesson_id, cast.coordinator)

    assert coordinator_hello["viewers"] == {"count": 2, "names": ["石渠一小 四年级一班", "刘协调员"]}
    assert (await receive_viewers(teacher_ws, 2))["names"] == ["石渠一小 四年级一班", "刘协调员"]
    assert (await receive_viewers(classroom_ws, 2))["names"] == []


async def test_attendance_is_written_on_connect_and_closed_on_disconnect(lesson_socket: Opener, cast: Cast) -> None:
    teacher_ws, _ = await join(lesson_socket, cast.lesson_id, cast.teacher)
    classroom_ws, _ = await join(lesson_socket, cast.lesson_id, cast.classroom)
    assert await _open_attendance(cast.lesson_id) == [
        (cast.teacher.pk, "publisher"),
        (cast.classroom.pk, "viewer"),
    ]

    await classroom_ws.disconnect(timeout=SOCKET_TIMEOUT)

    assert await _open_attendance(cast.lesson_id) == [(cast.teacher.pk, "publisher")]
    await receive_viewers(teacher_ws, 1)  # the classroom's join
    assert await receive_viewers(teacher_ws, 0) == {"v": 1, "type": "viewers", "count": 0, "names": []}
    rows = await database_sync_to_async(
        lambda: list(Attendance.objects.filter(user_id=cast.classroom.pk).values_list("joined_at", "left_at"))
    )()
    [(joined_at, left_at)] = rows
    assert left_at is not None and left_at >= joined_at


async def test_two_devices_of_one_classroom_are_one_viewer_name(lesson_socket: Opener, cast: Cast) -> None:
    teacher_ws, _ = await join(lesson_socket, cast.lesson_id, cast.teacher)
    await join(lesson_socket, cast.lesson_id, cast.classroom)
    await join(lesson_socket, cast.lesson_id, cast.classroom)

    assert len(await _open_attendance(cast.lesson_id)) == 3
    first = await receive_viewers(teacher_ws, 1)
    second = await receive_viewers(teacher_ws, 1)

    assert first["names"] == second["names"] == ["石渠一小 四年级一班"]


# --- relaying to the media worker --------------------------------------------------------------------


async def test_publishing_without_a_live_media_worker_is_refused_and_changes_nothing(
    lesson_socket: Opener, cast: Cast, settings: Any
) -> None:
    settings.MEDIA_WORKER_INPROCESS = False  # scaled mode, and no media worker process is running
    ws, _hello = await join(lesson_socket, cast.lesson_id, cast.teacher)
    before = await snapshot(cast.lesson_id)

    await ws.send_json_to({"v": 1, "type": "publish", "sdp": OFFER})

    assert (await receive_type(ws, "error"))["code"] == "no_media_worker"
    await assert_open(ws)
    assert await snapshot(cast.lesson_id) == before


async def test_an_offer_the_media_worker_cannot_negotiate_comes_back_as_an_error_frame(
    lesson_socket: Opener, cast: Cast, settings: Any
) -> None:
    import live.worker

    settings.MEDIA_WORKER_INPROCESS = True
    ws, _hello = await join(lesson_socket, cast.lesson_id, cast.classroom)  # starts the in-process worker
    runtime = live.worker._inprocess
    assert runtime is not None
    await database_sync_to_async(
        lambda: Lesson.objects.filter(pk=cast.lesson_id).update(
            state=Lesson.State.LIVE, media_worker_id=runtime.worker_id
        )
    )()

    # Shaped like an offer, so the web tier relays it; aiortc in the worker cannot negotiate it.
    await ws.send_json_to({"v": 1, "type": "watch", "sdp": OFFER, "layer": "light"})

    error = await receive_type(ws, "error", within=10)
    assert error["code"] == "bad_sdp"
    await assert_open(ws)
