"""Checks and clean-ups applied to every SDP offer before aiortc sees it.

The offers come from browsers we do not control, relayed through the web
tier, so the media worker checks their size and shape first
(:func:`validate_offer`) and then removes what would only cost time
(:func:`strip_mdns_candidates`).
"""

from __future__ import annotations

MAX_OFFER_BYTES = 64 * 1024


class InvalidOffer(ValueError):
    """The SDP offer was refused; ``reason`` says why, for logs and close codes."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def validate_offer(sdp: str) -> None:
    """Raise :class:`InvalidOffer` unless ``sdp`` looks like a usable SDP offer.

    Refused: more than 64 KB (a real offer is a few KB; this bounds what one
    message can make the worker parse), anything not starting with ``v=0``,
    and offers without any ``m=`` line (nothing to send or receive).
    """
    if len(sdp.encode("utf-8", errors="replace")) > MAX_OFFER_BYTES:
        raise InvalidOffer(f"offer larger than {MAX_OFFER_BYTES} bytes")
    if not sdp.startswith("v=0"):
        raise InvalidOffer("offer does not start with v=0")
    if not any(line.startswith("m=") for line in sdp.splitlines()):
        raise InvalidOffer("offer has no m= line")


def _candidate_address(line: str) -> str | None:
    # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    fields = line.split()
    return fields[4] if len(fields) >= 6 else None


def strip_mdns_candidates(sdp: str) -> str:
    """Drop ``a=candidate`` lines whose address is an mDNS name (``*.local``).

    A browser without camera permission hides its host addresses behind
    ``<uuid>.local`` names. The worker can never resolve a classroom's mDNS
    name, and aioice spends about 1 s per name trying to, inside
    ``setRemoteDescription`` (PITFALLS.md). The browser's connectivity checks
    still reach us and become peer-reflexive candidates.

    In a media section that lost candidates, ``a=end-of-candidates`` is
    dropped too: with it, aioice declares ICE failed as soon as its own
    (now empty) check list is exhausted, before the browser's first check can
    arrive. Line endings are preserved.
    """
    lines = sdp.splitlines(keepends=True)
    kept: list[str] = []
    section_start = 0
    section_stripped = False

    def close_section() -> None:
        if section_stripped:
            kept[section_start:] = [line for line in kept[section_start:] if not line.startswith("a=end-of-candidates")]

    for line in lines:
        if line.startswith("m="):
            close_section()
            section_start = len(kept)
            section_stripped = False
        if line.startswith("a=candidate:"):
            address = _candidate_address(line)
            if address is not None and address.lower().rstrip(".").endswith(".local"):
                section_stripped = True
                continue
        kept.append(line)
    close_section()
    return "".join(kept)
