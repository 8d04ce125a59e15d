"""ICE servers for browsers and media workers: STUN, and TURN with short-lived credentials.

TURN credentials follow coturn's ``use-auth-secret`` (the "TURN REST API"): username ``<expiry>:<user id>``,
password ``base64(HMAC-SHA1(secret, username))``. The secret itself never leaves the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from aiortc import RTCIceServer
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from .models import Lesson


def turn_credentials(*, user_id: int | str, ttl_seconds: int, now: float | None = None) -> tuple[str, str]:
    expiry = int((now if now is not None else time.time()) + ttl_seconds)
    username = f"{expiry}:{user_id}"
    digest = hmac.new(settings.LIVE_TURN_SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for(*, user: AbstractBaseUser, lesson: Lesson) -> list[dict[str, Any]]:
    """The RTCPeerConnection ``iceServers`` for a participant of ``lesson`` (JSON-ready)."""
    servers: list[dict[str, Any]] = []
    if settings.LIVE_STUN_URLS:
        servers.append({"urls": list(settings.LIVE_STUN_URLS)})
    if settings.LIVE_TURN_URLS and settings.LIVE_TURN_SECRET:
        username, password = turn_credentials(user_id=user.pk, ttl_seconds=settings.LIVE_TURN_TTL_SECONDS)
        servers.append({"urls": list(settings.LIVE_TURN_URLS), "username": username, "credential": password})
    return servers


def ice_servers_for_worker() -> list[RTCIceServer]:
    servers = [RTCIceServer(urls=url) for url in settings.LIVE_STUN_URLS]
    if settings.LIVE_TURN_URLS and settings.LIVE_TURN_SECRET and settings.LIVE_MEDIA_WORKER_TURN:
        username, password = turn_credentials(user_id="media", ttl_seconds=settings.LIVE_TURN_TTL_SECONDS)
        servers.extend(
            RTCIceServer(urls=url, username=username, credential=password) for url in settings.LIVE_TURN_URLS
        )
    return servers
