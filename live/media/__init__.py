"""Live media engine: per-lesson hub (ingest, shared encoders, fan-out, recording).

Pure asyncio/aiortc/PyAV, no Django, so it runs in any process; the Django
side relays signalling to a :class:`LessonHub`.
"""

from live.media.hub import (
    LIGHT,
    STANDARD,
    HubClosed,
    LayerSpec,
    LessonHub,
    MediaConfig,
    PieceInfo,
    UnknownLayer,
    UnknownPeer,
)
from live.media.recording import (
    JoinResult,
    Probe,
    join_pieces,
    list_spooled_pieces,
    make_poster,
    probe_recording,
)
from live.media.sdp import InvalidOffer, strip_mdns_candidates, validate_offer

__all__ = [
    "LIGHT",
    "STANDARD",
    "HubClosed",
    "InvalidOffer",
    "JoinResult",
    "LayerSpec",
    "LessonHub",
    "MediaConfig",
    "PieceInfo",
    "Probe",
    "UnknownLayer",
    "UnknownPeer",
    "join_pieces",
    "list_spooled_pieces",
    "make_poster",
    "probe_recording",
    "strip_mdns_candidates",
    "validate_offer",
]
