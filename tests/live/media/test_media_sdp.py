"""Offer checks and mDNS clean-up applied before aiortc sees an offer."""

from __future__ import annotations

import pytest

from live.media.sdp import MAX_OFFER_BYTES, InvalidOffer, strip_mdns_candidates, validate_offer

CHROMIUM_LIKE_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2113937151 3f2a9c4e-1b7d-4c55-9a51-0d6a3c2e9f10.local 54400 typ host generation 0",
        "a=candidate:2 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 0.0.0.0 rport 0 generation 0",
        "a=end-of-candidates",
        "a=mid:0",
        "a=recvonly",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2113937151 7c0ffee0-aaaa-4bbb-8ccc-123456789abc.LOCAL 54401 typ host",
        "a=mid:1",
        "a=recvonly",
        "",
    ]
)


def test_a_well_formed_offer_is_accepted() -> None:
    validate_offer(CHROMIUM_LIKE_OFFER)


@pytest.mark.parametrize(
    ("sdp", "reason"),
    [
        ("v=0\r\n" + "a=x\r\n" * (MAX_OFFER_BYTES // 5) + "m=video 9 UDP 96\r\n", "larger"),
        ("o=- 1 2 IN IP4 0.0.0.0\r\nv=0\r\nm=video 9 UDP 96\r\n", "v=0"),
        ("", "v=0"),
        ("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "m="),
    ],
    ids=["too-large", "not-sdp", "empty", "no-media"],
)
def test_a_bad_offer_is_refused_with_a_reason(sdp: str, reason: str) -> None:
    with pytest.raises(InvalidOffer) as caught:
        validate_offer(sdp)
    assert reason in caught.value.reason


def test_an_offer_of_exactly_the_limit_is_accepted() -> None:
    head = "v=0\r\nm=video 9 UDP 96\r\n"
    sdp = head + "a" * (MAX_OFFER_BYTES - len(head))
    validate_offer(sdp)
    with pytest.raises(InvalidOffer):
        validate_offer(sdp + "a")


def test_mdns_candidates_are_dropped_and_other_lines_kept_with_their_line_endings() -> None:
    stripped = strip_mdns_candidates(CHROMIUM_LIKE_OFFER)
    assert ".local" not in stripped.lower()
    assert "203.0.113.7 54400 typ srflx" in stripped
    assert stripped.count("\r\n") == CHROMIUM_LIKE_OFFER.count("\r\n") - 3  # 2 candidates + end-of-candidates
    assert "a=mid:0\r\n" in stripped and "a=mid:1\r\n" in stripped


def test_end_of_candidates_goes_only_where_mdns_candidates_were_dropped() -> None:
    # With end-of-candidates and an empty candidate list aioice fails ICE before
    # the browser's first (peer-reflexive) check can arrive.
    stripped = strip_mdns_candidates(CHROMIUM_LIKE_OFFER)
    assert "a=end-of-candidates" not in stripped
    plain = CHROMIUM_LIKE_OFFER.replace("3f2a9c4e-1b7d-4c55-9a51-0d6a3c2e9f10.local", "192.0.2.9")
    assert "a=end-of-candidates" in strip_mdns_candidates(plain)


def test_an_offer_without_mdns_candidates_is_unchanged() -> None:
    offer = "v=0\nm=video 9 UDP 96\na=candidate:1 1 udp 1 192.0.2.2 5000 typ host\na=end-of-candidates\n"
    assert strip_mdns_candidates(offer) == offer
