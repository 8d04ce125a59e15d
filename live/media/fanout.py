"""Hand one encoded packet to many consumers, each through its own bounded queue.

Every encoded ``av.Packet`` is shared, not copied: aiortc's sender only reads
it (``bytes(packet)``, ``pts``, ``time_base``). A consumer that needs to
modify a packet (the recorder: ``mux()`` rewrites pts in place) copies it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import av


class PacketSink(Protocol):
    def push(self, packet: av.Packet) -> None:
        """Take one packet; called on the event loop, must not block."""


class PacketFanout:
    """The consumers of one encoder's output."""

    def __init__(self) -> None:
        self._sinks: dict[int, PacketSink] = {}

    def add(self, sink: PacketSink) -> None:
        self._sinks[id(sink)] = sink

    def discard(self, sink: PacketSink) -> None:
        self._sinks.pop(id(sink), None)

    def __len__(self) -> int:
        return len(self._sinks)

    def publish(self, packet: av.Packet) -> None:
        # Copy the values: a sink may unsubscribe itself (or another) while we iterate.
        for sink in tuple(self._sinks.values()):
            sink.push(packet)


class PacketQueue:
    """A bounded FIFO of packets for one consumer.

    ``put`` never blocks the producer: when the consumer has fallen more than
    ``max_packets`` behind, the backlog is dropped and ``put`` returns False,
    so the caller can resynchronise on a keyframe. Queueing without bound for
    a slow consumer is how ``MediaRelay(buffered=True)`` leaks (PITFALLS.md).
    """

    def __init__(self, max_packets: int) -> None:
        self._queue: asyncio.Queue[av.Packet | None] = asyncio.Queue()
        self._max_packets = max_packets
        self.dropped = 0

    def put(self, packet: av.Packet) -> bool:
        if self._queue.qsize() >= self._max_packets:
            self.clear()
            return False
        self._queue.put_nowait(packet)
        return True

    def clear(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
            self.dropped += 1

    def close(self) -> None:
        """Wake a waiting consumer with ``None`` (end of stream)."""
        self._queue.put_nowait(None)

    async def get(self) -> av.Packet | None:
        return await self._queue.get()

    def __len__(self) -> int:
        return self._queue.qsize()
