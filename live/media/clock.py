"""The lesson's media clock: one time line for every layer, the audio and the recorder.

aiortc's ``RTCRtpSender`` derives RTP timestamps from the pts of the packets
it sends. All layers therefore stamp their packets on the same clock, so a
viewer switched from one layer to the other sees timestamps continue, and a
teacher who reloads (new peer connection, source timestamps restarting at 0)
does not make any viewer's timestamps jump backwards.
"""

from __future__ import annotations

import time
from fractions import Fraction

VIDEO_CLOCK_RATE = 90_000
AUDIO_CLOCK_RATE = 48_000
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_TIME_BASE = Fraction(1, AUDIO_CLOCK_RATE)


class MediaClock:
    """Seconds since the hub started (monotonic), convertible to wall-clock time."""

    def __init__(self) -> None:
        self._monotonic_origin = time.monotonic()
        self._wall_origin = time.time()

    def now(self) -> float:
        return time.monotonic() - self._monotonic_origin

    def wall_time(self, media_seconds: float) -> float:
        """Unix time of a point on this clock (used to place recording pieces)."""
        return self._wall_origin + media_seconds


class SourceTimeline:
    """Maps one publisher's frame times onto the hub clock, in ticks of ``rate``.

    Within a publisher session the source's own timestamps are kept (they are
    smoother than arrival times); the session is anchored to the hub clock at
    its first frame. If the source falls more than ``max_drift_s`` behind
    the hub clock (a frozen tab) or runs far ahead (a timestamp jump), it is
    re-anchored. Output ticks are strictly increasing across sessions.
    """

    def __init__(self, clock: MediaClock, rate: int, *, max_drift_s: float = 1.0) -> None:
        self._clock = clock
        self._rate = rate
        self._max_drift_s = max_drift_s
        self._offset: float | None = None
        self._last: int | None = None

    def restart(self) -> None:
        """A new publisher session starts: anchor again at its first frame."""
        self._offset = None

    def map(self, source_seconds: float | None) -> int:
        now = self._clock.now()
        if source_seconds is None:
            media_seconds = now
        else:
            # Behind the hub clock: the source stalled or froze; jump forward with it.
            # Ahead: usually a backlog being drained after a stall, which catches up by
            # itself; only a large lead means the source's timestamps jumped.
            offset = self._offset
            lead = None if offset is None else source_seconds + offset - now
            if offset is None or lead is None or lead < -self._max_drift_s or lead > 5 * self._max_drift_s:
                offset = self._offset = now - source_seconds
            media_seconds = source_seconds + offset
        ticks = round(media_seconds * self._rate)
        if self._last is not None and ticks <= self._last:
            ticks = self._last + 1
        self._last = ticks
        return ticks
