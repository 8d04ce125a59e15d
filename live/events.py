"""Messages on the channel layer: to a lesson's browsers (group) and to media workers.

Services call these inside ``transaction.on_commit`` so that nobody hears of a change that was rolled back.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1


def lesson_group(lesson_id: int) -> str:
    return f"lesson-{lesson_id}"


def lesson_broadcast(lesson_id: int, event: str, **payload: Any) -> None:
    """Send ``{"type": event, ...payload}`` to every browser connected to the lesson."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "lesson.event", "event": {"v": PROTOCOL_VERSION, "type": event, **payload}}
    try:
        async_to_sync(layer.group_send)(lesson_group(lesson_id), message)
    except Exception:  # a broken channel layer must not undo a committed state change
        log.exception("could not broadcast %s for lesson %s", event, lesson_id)


def worker_send(channel_name: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None or not channel_name:
        return
    try:
        async_to_sync(layer.send)(channel_name, message)
    except Exception:
        log.exception("could not reach media worker channel %s", channel_name)
