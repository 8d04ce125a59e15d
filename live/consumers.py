"""The lesson WebSocket: one per participant and lesson, carrying signalling and live updates.

Envelope (version 1), browser → server::

    {"v": 1, "type": "publish", "sdp": "<offer>"}               # the lesson's teacher only
    {"v": 1, "type": "watch", "sdp": "<offer>", "layer": "standard"|"light"}
    {"v": 1, "type": "layer", "layer": "standard"|"light"}
    {"v": 1, "type": "keyframe"}
    {"v": 1, "type": "end"}                                       # teacher or coordinator
    {"v": 1, "type": "ping"}

server → browser: ``hello``, ``answer``, ``state``, ``viewers``, ``error`` (``code``, ``message``), ``pong``.
Close codes: 4401 anonymous, 4403 not in the lesson, 4404 unknown lesson (accepted first, so browsers see
the code). A malformed or refused message gets an ``error`` frame and changes nothing.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from outreach.errors import DomainError
from outreach.middleware import chosen_language
from outreach.selectors import user_is_coordinator

from . import events
from .errors import BadSignal, LessonNotAllowed, LessonNotFound, LessonNotLive
from .ice import ice_servers_for
from .media.sdp import InvalidOffer, validate_offer
from .models import Lesson
from .selectors import lesson_get_for_participant, lesson_viewer_names
from .services import attendance_join, attendance_leave, lesson_end, lesson_go_live, lesson_media_channel
from .worker import ensure_inprocess_worker

log = logging.getLogger(__name__)

CLOSE_ANONYMOUS = 4401
CLOSE_NOT_ALLOWED = 4403
CLOSE_NOT_FOUND = 4404
LAYERS = ("standard", "light")
# A frame a little larger than the SDP limit leaves room for the envelope; anything larger is refused
# before it is parsed.
MAX_FRAME_BYTES = settings.LIVE_MAX_SDP_BYTES + 4096


class LessonConsumer(AsyncWebsocketConsumer):
    lesson_id: int
    role: str
    peer_id: str
    is_coordinator: bool

    async def connect(self) -> None:
        # Messages (error frames) speak the language the user chose on the pages; the consumer's task keeps
        # this activation for the life of the socket.
        translation.activate(chosen_language(self.scope.get("cookies", {})))
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_ANONYMOUS)
            return
        self.lesson_id = int(self.scope["url_route"]["kwargs"]["lesson_id"])
        try:
            lesson, role = await database_sync_to_async(lesson_get_for_participant)(user=user, lesson_id=self.lesson_id)
        except LessonNotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except LessonNotAllowed:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        self.role = role
        self.peer_id = uuid.uuid4().hex
        self.is_coordinator = await database_sync_to_async(user_is_coordinator)(user)
        await self.channel_layer.group_add(events.lesson_group(self.lesson_id), self.channel_name)
        if lesson.state != Lesson.State.ENDED:  # an ended lesson's page only learns that it ended
            await database_sync_to_async(attendance_join)(
                lesson=lesson, user=user, connection_id=self.peer_id, role=role
            )
        await ensure_inprocess_worker()
        names = await database_sync_to_async(lesson_viewer_names)(lesson_id=self.lesson_id)
        await self._send(
            "hello",
            role=role,
            peer=self.peer_id,
            lesson={"id": lesson.pk, "title": lesson.title, "state": lesson.state},
            iceServers=ice_servers_for(user=user, lesson=lesson),
            viewers={"count": len(names), "names": names if self._sees_names() else []},
        )

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "peer_id"):
            return
        await self.channel_layer.group_discard(events.lesson_group(self.lesson_id), self.channel_name)
        await database_sync_to_async(attendance_leave)(connection_id=self.peer_id)
        channel = await database_sync_to_async(lesson_media_channel)(lesson_id=self.lesson_id)
        if channel:
            await self.channel_layer.send(
                channel, {"type": "media.remove", "lesson": self.lesson_id, "peer": self.peer_id}
            )

    # --- browser → server -----------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not hasattr(self, "peer_id"):
            return
        try:
            message = self._parse(text_data, bytes_data)
            await self._dispatch(message)
        except DomainError as exc:
            await self._send("error", code=exc.code, message=exc.message)
        except InvalidOffer as exc:
            await self._send("error", code="bad_sdp", message=str(exc))

    def _parse(self, text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
        if text_data is None:
            raise BadSignal(_("只接受 JSON 文本消息。"))
        if len(text_data.encode()) > MAX_FRAME_BYTES:
            raise BadSignal(_("消息过大。"), code="too_large")
        try:
            message = json.loads(text_data)
        except ValueError as exc:
            raise BadSignal(_("消息不是有效的 JSON。")) from exc
        if not isinstance(message, dict):
            raise BadSignal(_("消息格式不正确。"))
        if message.get("v") != events.PROTOCOL_VERSION:
            raise BadSignal(_("不支持的协议版本。"), code="bad_version")
        if not isinstance(message.get("type"), str):
            raise BadSignal(_("消息缺少类型。"))
        return message

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ping":
            await self._send("pong")
        elif kind == "publish":
            await self._publish(message)
        elif kind == "watch":
            await self._watch(message)
        elif kind == "layer":
            layer = message.get("layer")
            if layer not in LAYERS:
                raise BadSignal(_("未知的画质档位。"))
            await self._to_worker({"type": "media.layer", "layer": layer})
        elif kind == "keyframe":
            await self._to_worker({"type": "media.keyframe"})
        elif kind == "end":
            if self.role != "publisher" and not self.is_coordinator:
                raise LessonNotAllowed(_("只有授课教师或协调员可以结束课程。"))
            await database_sync_to_async(lesson_end)(
                lesson_id=self.lesson_id, actor=self.scope["user"], reason="teacher", ip=self._ip()
            )
        else:
            raise BadSignal(_("未知的消息类型。"), code="unknown_type")

    def _sdp(self, message: dict[str, Any]) -> str:
        sdp = message.get("sdp")
        if not isinstance(sdp, str):
            raise BadSignal(_("缺少 SDP。"))
        if len(sdp.encode()) > settings.LIVE_MAX_SDP_BYTES:
            raise BadSignal(_("SDP 超过 64 KB。"), code="too_large")
        validate_offer(sdp)
        return sdp

    async def _publish(self, message: dict[str, Any]) -> None:
        if self.role != "publisher":
            raise LessonNotAllowed(_("只有本课的授课教师可以开播。"))
        sdp = self._sdp(message)
        _lesson, channel = await database_sync_to_async(lesson_go_live)(
            lesson_id=self.lesson_id, actor=self.scope["user"], ip=self._ip()
        )
        await self.channel_layer.send(
            channel,
            {
                "type": "media.publish",
                "lesson": self.lesson_id,
                "peer": self.peer_id,
                "sdp": sdp,
                "reply_to": self.channel_name,
            },
        )

    async def _watch(self, message: dict[str, Any]) -> None:
        layer = message.get("layer", "standard")
        if layer not in LAYERS:
            raise BadSignal(_("未知的画质档位。"))
        sdp = self._sdp(message)
        channel = await database_sync_to_async(lesson_media_channel)(lesson_id=self.lesson_id)
        if channel is None:
            raise LessonNotLive(_("这节课还没有开始直播。"))
        await self.channel_layer.send(
            channel,
            {
                "type": "media.watch",
                "lesson": self.lesson_id,
                "peer": self.peer_id,
                "sdp": sdp,
                "layer": layer,
                "reply_to": self.channel_name,
            },
        )

    async def _to_worker(self, message: dict[str, Any]) -> None:
        channel = await database_sync_to_async(lesson_media_channel)(lesson_id=self.lesson_id)
        if channel is None:
            raise LessonNotLive(_("这节课还没有开始直播。"))
        await self.channel_layer.send(channel, {**message, "lesson": self.lesson_id, "peer": self.peer_id})

    # --- channel layer → browser ----------------------------------------------------------------------

    async def media_answer(self, message: dict[str, Any]) -> None:
        if message.get("peer") == self.peer_id:
            await self._send("answer", sdp=message["sdp"])

    async def media_error(self, message: dict[str, Any]) -> None:
        if message.get("peer") == self.peer_id:
            await self._send("error", code=message.get("code", "media_error"), message=message.get("message", ""))

    async def lesson_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        if event.get("type") == "viewers" and not self._sees_names():
            # Viewers see how many watch, not who.
            event = {**event, "names": []}
        await self.send(text_data=json.dumps(event, ensure_ascii=False))
        if event.get("type") == "state" and event.get("state") == Lesson.State.ENDED:
            await self.close(code=1000)

    # --- helpers --------------------------------------------------------------------------------------

    async def _send(self, kind: str, **payload: Any) -> None:
        await self.send(
            text_data=json.dumps({"v": events.PROTOCOL_VERSION, "type": kind, **payload}, ensure_ascii=False)
        )

    def _sees_names(self) -> bool:
        return self.role == "publisher" or self.is_coordinator

    def _ip(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None
