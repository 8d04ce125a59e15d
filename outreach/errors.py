"""Domain errors shared by every app. Services raise them; each edge (view, consumer, command) maps them once."""

from __future__ import annotations


class DomainError(Exception):
    """A user-facing refusal: ``code`` is stable for machines, ``message`` is translated for people."""

    code = "error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message or str(self.__class__.__name__)
        if code is not None:
            self.code = code


class NotFound(DomainError):
    code = "not_found"


class NotAllowed(DomainError):
    code = "not_allowed"


class InvalidInput(DomainError):
    code = "invalid"


class InvalidState(DomainError):
    code = "invalid_state"
