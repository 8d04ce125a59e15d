"""Interface language: Chinese unless chosen, English when chosen, and a complete English catalogue."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import translation

from live.views import _client_texts
from outreach.models import Profile

LOGIN_URL = "/accounts/login/"
CHINESE_LOGIN_HEADING = "登录金石桥"
ENGLISH_LOGIN_HEADING = "Sign in to Jinshi Bridge"
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]|\{\w*\}")


def _catalogue_dir() -> Path:
    return Path(settings.LOCALE_PATHS[0]) / "en" / "LC_MESSAGES"


def _parse_po(path: Path) -> list[dict[str, object]]:
    """Entries of a .po file (stdlib only): msgctxt, msgid, msgid_plural, msgstr / msgstr[n], flags."""
    entries: list[dict[str, object]] = []
    entry: dict[str, object] = {}
    field: str | None = None

    def complete() -> bool:
        return any(key.startswith("msgstr") for key in entry)

    for raw in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        line = raw.strip()
        starts_entry = line.startswith("#") or line.startswith(("msgctxt ", "msgid "))
        if (not line or starts_entry) and complete():
            entries.append(entry)
            entry, field = {}, None
        if not line or line.startswith("#~"):
            continue
        if line.startswith("#,"):
            entry.setdefault("flags", set()).update(flag.strip() for flag in line[2:].split(","))  # type: ignore[attr-defined]
        elif line.startswith("#"):
            continue
        elif match := re.fullmatch(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")', line):
            field = match.group(1)
            entry[field] = ast.literal_eval(match.group(2))
        elif line.startswith('"') and field is not None:
            entry[field] = str(entry[field]) + ast.literal_eval(line)
        else:
            raise AssertionError(f"unparsed line in {path.name}: {raw!r}")
    return entries


def _messages() -> list[dict[str, object]]:
    return [entry for entry in _parse_po(_catalogue_dir() / "django.po") if entry["msgid"] != ""]


def _teacher(username: str = "teacher-en") -> User:
    user = User.objects.create_user(username=username, password="pw-for-tests")
    Profile.objects.create(user=user, display_name="李老师", role="teacher")
    return user


def _choose_language(client: Client, language: str, next_url: str) -> str:
    response = client.post("/i18n/setlang/", {"language": language, "next": next_url}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain and response.redirect_chain[-1][0] == next_url
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == language
    return response.content.decode()


# --- pages -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_login_page_is_chinese_without_a_chosen_language_even_for_an_english_browser(client: Client) -> None:
    response = client.get(LOGIN_URL, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")

    assert response.status_code == 200
    page = response.content.decode()
    assert CHINESE_LOGIN_HEADING in page
    assert ENGLISH_LOGIN_HEADING not in page
    assert '<html lang="zh-hans">' in page


@pytest.mark.django_db
def test_choosing_english_in_the_language_menu_shows_the_login_page_in_english(client: Client) -> None:
    page = _choose_language(client, "en", LOGIN_URL)

    assert ENGLISH_LOGIN_HEADING in page
    assert CHINESE_LOGIN_HEADING not in page
    assert '<html lang="en">' in page
    assert ">Username <input" in page and ">Password <input" in page

    # Still English on the next visit (the cookie, not the redirect, carries the choice).
    again = client.get(LOGIN_URL).content.decode()
    assert ENGLISH_LOGIN_HEADING in again and CHINESE_LOGIN_HEADING not in again


@pytest.mark.django_db
def test_choosing_chinese_again_switches_back(client: Client) -> None:
    _choose_language(client, "en", LOGIN_URL)
    page = _choose_language(client, "zh-hans", LOGIN_URL)

    assert CHINESE_LOGIN_HEADING in page
    assert ENGLISH_LOGIN_HEADING not in page


@pytest.mark.django_db
def test_teacher_home_page_in_english_has_english_headings(client: Client) -> None:
    client.force_login(_teacher())

    page = _choose_language(client, "en", "/")

    for heading in ("<h2>Live now</h2>", "<h2>Coming up</h2>", "<h2>Latest recorded classes</h2>"):
        assert heading in page
    assert "Hello, 李老师" in page
    assert ">Library</a>" in page and ">Schedule a live class</a>" in page
    for chinese in ("正在直播", "即将开始", "最新录播课", "您好", "资源库", "安排直播课"):
        assert chinese not in page


@pytest.mark.django_db
def test_teacher_home_page_is_chinese_by_default(client: Client) -> None:
    client.force_login(_teacher())

    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()

    assert "<h2>正在直播</h2>" in page
    assert "Live now" not in page


def test_status_words_for_the_lesson_pages_are_translated() -> None:
    with translation.override("en"):
        texts = _client_texts()

    assert texts["live"] == "Live"
    for key, text in texts.items():
        assert text and not HAN.search(text), f"{key!r} is not translated: {text!r}"


# --- catalogue ---------------------------------------------------------------------------------------


def test_english_catalogue_translates_every_message() -> None:
    messages = _messages()
    assert len(messages) > 100  # guards against the parser silently finding nothing

    untranslated, fuzzy, still_chinese, placeholders = [], [], [], []
    for entry in messages:
        msgid = str(entry["msgid"])
        translations = [str(value) for key, value in entry.items() if key.startswith("msgstr")]
        if not translations or any(not text.strip() for text in translations):
            untranslated.append(msgid)
        if "fuzzy" in entry.get("flags", set()):  # type: ignore[operator]
            fuzzy.append(msgid)
        if any(HAN.search(text) for text in translations):
            still_chinese.append(msgid)
        expected = set(PLACEHOLDER.findall(msgid + str(entry.get("msgid_plural", ""))))
        if any(set(PLACEHOLDER.findall(text)) != expected for text in translations if text):
            placeholders.append(msgid)

    assert not untranslated, f"untranslated in locale/en django.po: {untranslated}"
    assert not fuzzy, f"fuzzy in locale/en django.po: {fuzzy}"
    assert not still_chinese, f"Chinese left in English translations: {still_chinese}"
    assert not placeholders, f"placeholders changed: {placeholders}"


def test_compiled_catalogue_matches_the_po_file() -> None:
    """Catches a .po edited without running compilemessages."""
    directory = _catalogue_dir()
    mo = directory / "django.mo"
    assert mo.exists(), "run manage.py compilemessages"
    assert mo.stat().st_size < 100_000

    with mo.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = []
    for entry in _messages():
        if "msgid_plural" in entry or "msgctxt" in entry:
            continue
        msgid = str(entry["msgid"])
        if compiled.gettext(msgid) != entry.get("msgstr"):
            stale.append(msgid)
    assert not stale, f"django.mo is out of date (run compilemessages): {stale}"
