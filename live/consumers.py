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

import asyncio
import json
import logging
import re
import uuid
from typing import Any
from urllib.parse import parse_qs

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
from .selectors import attendance_owns_connection, lesson_get_for_participant, lesson_viewer_names
from .services import (
    attendance_join,
    attendance_leave,
    lesson_end,
    lesson_go_live,
    lesson_media_channel,
    lesson_media_worker,
    lesson_repin_worker,
)
from .worker import ensure_inprocess_worker

log = logging.getLogger(__name__)

CLOSE_ANONYMOUS = 4401
CLOSE_NOT_ALLOWED = 4403
CLOSE_NOT_FOUND = 4404
LAYERS = ("standard", "light")
# A frame a little larger than the SDP limit leaves room for the envelope; anything larger is refused
# before it is parsed.
MAX_FRAME_BYTES = settings.LIVE_MAX_SDP_BYTES + 4096
# A media worker answers an offer in well under a second; one that has not answered after this long is taken
# for dead (killed, or its host gone) and the lesson moves to another worker.
ANSWER_TIMEOUT_SECONDS = 1.5
_PEER_ID = re.compile(r"[0-9a-f]{32}")
MAX_OFFER_RETRIES = 2


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
        self._late_answers: set[asyncio.Task[None]] = set()
        self._pending_offer: tuple[dict[str, Any], str, int] | None = None  # (request, worker id, attempt)
        self._answer_timer: asyncio.TimerHandle | None = None
        self.peer_id = uuid.uuid4().hex
        # The media identity: a page whose socket dropped while its peer connection lived on resumes it
        # (``?peer=<its previous id>``), so a signalling blip (Redis restarting, a proxy reload) leaves the
        # picture alone.
        self.media_peer = await self._resumable_peer(user.pk) or self.peer_id
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
            peer=self.media_peer,
            lesson={"id": lesson.pk, "title": lesson.title, "state": lesson.state},
            iceServers=ice_servers_for(user=user, lesson=lesson),
            viewers={"count": len(names), "names": names if self._sees_names() else []},
        )

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "peer_id"):
            return
        self._cancel_answer_timer()
        for task in self._late_answers:
            task.cancel()
        await self.channel_layer.group_discard(events.lesson_group(self.lesson_id), self.channel_name)
        await database_sync_to_async(attendance_leave)(connection_id=self.peer_id)
        if self.role == "publisher":
            worker = await database_sync_to_async(lesson_media_worker)(lesson_id=self.lesson_id)
            if worker is not None:
                await self.channel_layer.send(
                    worker[1], {"type": "media.socket_gone", "lesson": self.lesson_id, "peer": self.media_peer}
                )
        # The media peer is not removed here: a socket can drop while the peer connection lives on (and the
        # page resumes it). A page that goes away closes its peer connection, which the media hub notices.

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
        lesson, channel = await database_sync_to_async(lesson_go_live)(
            lesson_id=self.lesson_id, actor=self.scope["user"], ip=self._ip()
        )
        request = {"type": "media.publish", "lesson": self.lesson_id, "peer": self.media_peer, "sdp": sdp}
        await self._offer_to_worker(request, lesson.media_worker_id, channel)

    async def _watch(self, message: dict[str, Any]) -> None:
        layer = message.get("layer", "standard")
        if layer not in LAYERS:
            raise BadSignal(_("未知的画质档位。"))
        sdp = self._sdp(message)
        worker = await database_sync_to_async(lesson_media_worker)(lesson_id=self.lesson_id)
        if worker is None:
            raise LessonNotLive(_("这节课还没有开始直播。"))
        request = {"type": "media.watch", "lesson": self.lesson_id, "peer": self.media_peer, "sdp": sdp, "layer": layer}
        await self._offer_to_worker(request, *worker)

    async def _offer_to_worker(self, request: dict[str, Any], worker_id: str, channel: str, attempt: int = 0) -> None:
        """Send an offer to the lesson's media worker and expect its answer within ANSWER_TIMEOUT_SECONDS.

        A worker that does not answer is taken for dead: the lesson is pinned to another live worker and the
        offer goes there (the pages then reconnect by themselves; nobody reloads).
        """
        self._cancel_answer_timer()
        self._pending_offer = (request, worker_id, attempt)
        await self.channel_layer.send(channel, {**request, "reply_to": self.channel_name})
        loop = asyncio.get_running_loop()
        self._answer_timer = loop.call_later(
            ANSWER_TIMEOUT_SECONDS, self._start_late_answer, request, worker_id, attempt
        )

    def _start_late_answer(self, request: dict[str, Any], worker_id: str, attempt: int) -> None:
        task = asyncio.get_running_loop().create_task(self._answer_late(request, worker_id, attempt))
        self._late_answers.add(task)
        task.add_done_callback(self._late_answers.discard)

    async def _answer_late(self, request: dict[str, Any], worker_id: str, attempt: int) -> None:
        self._answer_timer = None
        log.warning("lesson %s: media worker %s did not answer a %s", self.lesson_id, worker_id, request["type"])
        channel = await database_sync_to_async(lesson_repin_worker)(
            lesson_id=self.lesson_id, unresponsive_worker_id=worker_id
        )
        worker = await database_sync_to_async(lesson_media_worker)(lesson_id=self.lesson_id)
        if channel is None or worker is None or attempt >= MAX_OFFER_RETRIES:
            self._pending_offer = None
            await self._send("error", code="no_media_worker", message=_("媒体服务暂时不可用，请稍后再试。"))
            return
        # Everyone else in the lesson waiting on the dead worker moves now instead of timing out too.
        await self.channel_layer.group_send(
            events.lesson_group(self.lesson_id), {"type": "lesson.media_moved", "dead": worker_id}
        )
        await self._offer_to_worker(request, worker[0], worker[1], attempt + 1)

    async def lesson_media_moved(self, message: dict[str, Any]) -> None:
        pending = self._pending_offer
        if pending is None or pending[1] != message.get("dead"):
            return
        request, _dead, attempt = pending
        worker = await database_sync_to_async(lesson_media_worker)(lesson_id=self.lesson_id)
        if worker is not None and worker[0] != message.get("dead"):
            await self._offer_to_worker(request, worker[0], worker[1], attempt + 1)

    def _cancel_answer_timer(self) -> None:
        timer: asyncio.TimerHandle | None = getattr(self, "_answer_timer", None)
        if timer is not None:
            timer.cancel()
        self._answer_timer = None

    async def _to_worker(self, message: dict[str, Any]) -> None:
        channel = await database_sync_to_async(lesson_media_channel)(lesson_id=self.lesson_id)
        if channel is None:
            raise LessonNotLive(_("这节课还没有开始直播。"))
        await self.channel_layer.send(channel, {**message, "lesson": self.lesson_id, "peer": self.media_peer})

    # --- channel layer → browser ----------------------------------------------------------------------

    async def media_answer(self, message: dict[str, Any]) -> None:
        if message.get("peer") == self.media_peer:
            self._cancel_answer_timer()
            self._pending_offer = None
            await self._send("answer", sdp=message["sdp"])

    async def media_error(self, message: dict[str, Any]) -> None:
        if message.get("peer") == self.media_peer:
            self._cancel_answer_timer()
            self._pending_offer = None
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

    async def _resumable_peer(self, user_id: int) -> str | None:
        wanted = parse_qs(self.scope.get("query_string", b"").decode(errors="replace")).get("peer", [""])[0]
        if not _PEER_ID.fullmatch(wanted):
            return None
        owned = await database_sync_to_async(attendance_owns_connection)(
            user_id=user_id, lesson_id=self.lesson_id, connection_id=wanted
        )
        return wanted if owned else None

    def _sees_names(self) -> bool:
        return self.role == "publisher" or self.is_coordinator

    def _ip(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None
