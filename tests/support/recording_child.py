"""A media worker stand-in that records a lesson until it is killed.

Run as ``python -m tests.support.recording_child SPOOL_DIR PIECE_SECONDS``.
It publishes the real clip into a :class:`LessonHub` in this process and
prints ``piece <index> <path>`` for every finished piece; the test kills it
with SIGKILL mid-piece, as a crashed or OOM-killed worker would be.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from live.media import LessonHub, MediaConfig, PieceInfo
from tests.support.rtc import Publisher


async def record_forever(spool_dir: Path, piece_seconds: float) -> None:
    async def on_piece(info: PieceInfo) -> None:
        print(f"piece {info.index} {info.path}", flush=True)

    hub = LessonHub("killed", spool_dir=spool_dir, config=MediaConfig(piece_seconds=piece_seconds), on_piece=on_piece)
    publisher = Publisher()
    await publisher.connect(lambda sdp: hub.publish("teacher", sdp))
    print("publishing", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(record_forever(Path(sys.argv[1]), float(sys.argv[2])))
