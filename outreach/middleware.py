"""Language choice: Chinese unless the user picked another language."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.http import HttpRequest
from django.middleware.locale import LocaleMiddleware
from django.utils import translation


class ChosenLanguageMiddleware(LocaleMiddleware):
    """Like Django's LocaleMiddleware, but the browser's Accept-Language is not consulted.

    Classroom PCs and donated laptops often run an English system locale although everyone in the room
    reads Chinese or Tibetan; the interface stays in Chinese until someone chooses otherwise (the language
    menu sets Django's language cookie).
    """

    def process_request(self, request: HttpRequest) -> None:
        translation.activate(chosen_language(request.COOKIES))
        request.LANGUAGE_CODE = translation.get_language()


def chosen_language(cookies: Mapping[str, str]) -> str:
    """The language the user picked (Django's language cookie), else the platform default."""
    chosen = cookies.get(settings.LANGUAGE_COOKIE_NAME, "")
    if not chosen:
        return str(settings.LANGUAGE_CODE)
    try:
        return translation.get_supported_language_variant(chosen)
    except LookupError:
        return str(settings.LANGUAGE_CODE)
