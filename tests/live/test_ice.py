"""ICE servers: our own STUN, TURN with coturn's short-lived REST credentials, never Google's STUN."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from live.ice import ice_servers_for, ice_servers_for_worker, turn_credentials
from tests import factories

SECRET = "coturn-static-auth-secret-for-tests"


def coturn_password(secret: str, username: str) -> str:
    """What coturn computes with ``use-auth-secret``: base64(HMAC-SHA1(static-auth-secret, username))."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def test_turn_credentials_are_expiry_colon_user_id_with_coturns_hmac_password(settings: Any) -> None:
    settings.LIVE_TURN_SECRET = SECRET

    username, password = turn_credentials(user_id=42, ttl_seconds=3600, now=1_767_225_600.7)

    assert username == "1767229200:42"
    assert password == coturn_password(SECRET, "1767229200:42")
    assert len(base64.b64decode(password)) == 20  # a SHA-1 digest


def test_turn_credentials_change_with_the_secret_and_the_user(settings: Any) -> None:
    settings.LIVE_TURN_SECRET = SECRET
    first = turn_credentials(user_id=1, ttl_seconds=60, now=1000)
    other_user = turn_credentials(user_id=2, ttl_seconds=60, now=1000)
    settings.LIVE_TURN_SECRET = SECRET + "-rotated"

    rotated = turn_credentials(user_id=1, ttl_seconds=60, now=1000)

    assert first[0] == rotated[0] == "1060:1"
    assert len({first[1], other_user[1], rotated[1]}) == 3


@pytest.mark.django_db
def test_by_default_there_are_no_ice_servers_and_none_of_googles(settings: Any) -> None:
    assert settings.LIVE_STUN_URLS == [] and settings.LIVE_TURN_URLS == []
    lesson = factories.lesson()

    servers = ice_servers_for(user=lesson.teacher, lesson=lesson)

    assert servers == []
    assert "google" not in json.dumps(servers)
    assert ice_servers_for_worker() == []


@pytest.mark.django_db
def test_participants_get_our_stun_and_a_turn_login_but_never_the_secret(settings: Any) -> None:
    settings.LIVE_STUN_URLS = ["stun:turn.jinshi.example:3478"]
    settings.LIVE_TURN_URLS = ["turn:turn.jinshi.example:3478?transport=udp", "turns:turn.jinshi.example:443"]
    settings.LIVE_TURN_SECRET = SECRET
    settings.LIVE_TURN_TTL_SECONDS = 6 * 3600
    lesson = factories.lesson()
    before = time.time()

    stun, turn = ice_servers_for(user=lesson.teacher, lesson=lesson)

    assert stun == {"urls": ["stun:turn.jinshi.example:3478"]}
    assert turn["urls"] == settings.LIVE_TURN_URLS
    expiry, user_id = turn["username"].split(":")
    assert user_id == str(lesson.teacher.pk)
    assert before + 6 * 3600 - 1 <= int(expiry) <= time.time() + 6 * 3600
    assert turn["credential"] == coturn_password(SECRET, turn["username"])
    assert SECRET not in json.dumps([stun, turn])


@pytest.mark.django_db
def test_turn_urls_without_a_secret_give_no_turn_login(settings: Any) -> None:
    settings.LIVE_TURN_URLS = ["turn:turn.jinshi.example:3478"]
    settings.LIVE_TURN_SECRET = ""
    lesson = factories.lesson()

    assert ice_servers_for(user=lesson.teacher, lesson=lesson) == []
    assert ice_servers_for_worker() == []


def test_the_media_worker_uses_the_same_servers_with_its_own_turn_login(settings: Any) -> None:
    settings.LIVE_STUN_URLS = ["stun:turn.jinshi.example:3478"]
    settings.LIVE_TURN_URLS = ["turn:turn.jinshi.example:3478"]
    settings.LIVE_TURN_SECRET = SECRET

    stun, turn = ice_servers_for_worker()

    assert stun.urls == "stun:turn.jinshi.example:3478"
    assert stun.username is None
    assert turn.urls == "turn:turn.jinshi.example:3478"
    assert turn.username is not None and turn.username.endswith(":media")
    assert turn.credential == coturn_password(SECRET, turn.username)
