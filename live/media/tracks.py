"""The tracks a viewer's ``RTCRtpSender`` pulls from: shared packets, not frames.

``RTCRtpSender`` accepts ``av.Packet`` from ``recv()`` and only packetises
them, so a viewer costs no encoding. A viewer's video track is a proxy whose
source layer can change without renegotiation: on :meth:`ViewerVideoTrack.set_layer`
it keeps sending the old layer until the new layer's next keyframe (which it
asks for), then switches on exactly that keyframe. Both layers stamp packets
on the same clock, so the RTP timestamps simply continue.

A track subscribes to its encoder only when its sender starts pulling (that
is, once DTLS is up): a viewer still connecting queues nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from live.media.fanout import PacketFanout, PacketQueue
from live.media.video import LayerEncoder

# About two seconds of media; a viewer further behind resynchronises on a keyframe.
VIDEO_QUEUE_PACKETS = 50
AUDIO_QUEUE_PACKETS = 100


def _restamped(packet: av.Packet, pts: int) -> av.Packet:
    """A copy of a shared packet with another pts (the shared one must not change)."""
    copy = av.Packet(bytes(packet))
    copy.pts = copy.dts = pts
    copy.time_base = packet.time_base
    copy.is_keyframe = packet.is_keyframe
    return copy


class _LayerSink:
    """Subscription of one viewer track to one layer (the track may hold two while switching)."""

    def __init__(self, track: ViewerVideoTrack, layer: str) -> None:
        self._track = track
        self.layer = layer

    def push(self, packet: av.Packet) -> None:
        self._track._on_packet(self.layer, packet)


class ViewerVideoTrack(MediaStreamTrack):
    """One viewer's video: packets of its current layer, starting on a keyframe."""

    kind = "video"

    def __init__(self, layers: Mapping[str, LayerEncoder], layer: str) -> None:
        super().__init__()
        self._layers = layers
        self._current = layer
        self._pending: str | None = None
        self._sinks: dict[str, _LayerSink] = {}
        self._queue = PacketQueue(VIDEO_QUEUE_PACKETS)
        self._started = False
        self._needs_keyframe = True
        self._last_pts: int | None = None
        self.packets_sent = 0
        self.layer_switches = 0

    @property
    def layer(self) -> str:
        """The layer this viewer is (or is about to be) watching."""
        return self._pending or self._current

    def set_layer(self, layer: str) -> None:
        if layer not in self._layers:
            raise KeyError(layer)
        if layer == self.layer:
            return
        if layer == self._current:
            # Switching back before the switch happened: just stay.
            self._unsubscribe(self._pending)
            self._pending = None
            return
        if not self._started:
            self._current = layer
            return
        self._unsubscribe(self._pending)
        self._pending = layer
        self._subscribe(layer)
        self._layers[layer].request_keyframe()

    def request_keyframe(self) -> None:
        """The viewer lost the picture (PLI/FIR) or just connected."""
        self._layers[self.layer].request_keyframe()

    def _subscribe(self, layer: str) -> None:
        if layer not in self._sinks:
            sink = _LayerSink(self, layer)
            self._sinks[layer] = sink
            self._fanout(layer).add(sink)

    def _unsubscribe(self, layer: str | None) -> None:
        if layer is not None and layer in self._sinks:
            self._fanout(layer).discard(self._sinks.pop(layer))

    def _fanout(self, layer: str) -> PacketFanout:
        return self._layers[layer].fanout

    def _on_packet(self, layer: str, packet: av.Packet) -> None:
        if layer == self._pending:
            if not packet.is_keyframe:
                return
            # The new layer's keyframe: switch exactly here.
            self._unsubscribe(self._current)
            self._current, self._pending = layer, None
            self._needs_keyframe = False
            self.layer_switches += 1
        elif layer != self._current:
            return
        elif self._needs_keyframe:
            if not packet.is_keyframe:
                return  # undecodable without the keyframe; it is on its way
            self._needs_keyframe = False
        if not self._queue.put(packet):
            # The sender fell behind and the backlog was dropped: restart on a keyframe.
            self._needs_keyframe = True
            self.request_keyframe()

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started:
            # The sender starts pulling once DTLS is up: now the viewer can use a keyframe.
            self._started = True
            self._subscribe(self._current)
            self.request_keyframe()
        packet = await self._queue.get()
        if packet is None or self.readyState != "live":
            raise MediaStreamError
        if packet.pts is not None:
            if self._last_pts is not None and packet.pts <= self._last_pts:
                # Both layers encode the same source frames with the same pts, so
                # the keyframe we switch on often has the pts of the old layer's
                # frame just sent. Same RTP timestamp means same frame to the
                # receiver, which would merge the two and lose the keyframe.
                packet = _restamped(packet, self._last_pts + 1)
            self._last_pts = packet.pts
        self.packets_sent += 1
        return packet

    def stop(self) -> None:
        for layer in list(self._sinks):
            self._unsubscribe(layer)
        self._queue.close()
        super().stop()


class ViewerAudioTrack(MediaStreamTrack):
    """One viewer's audio: the shared Opus packets."""

    kind = "audio"

    def __init__(self, fanout: PacketFanout) -> None:
        super().__init__()
        self._fanout = fanout
        self._queue = PacketQueue(AUDIO_QUEUE_PACKETS)
        self._started = False
        self.packets_sent = 0

    def push(self, packet: av.Packet) -> None:
        # Overflow drops the backlog; Opus needs no resynchronisation.
        self._queue.put(packet)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started:
            self._started = True
            self._fanout.add(self)
        packet = await self._queue.get()
        if packet is None or self.readyState != "live":
            raise MediaStreamError
        self.packets_sent += 1
        return packet

    def stop(self) -> None:
        self._fanout.discard(self)
        self._queue.close()
        super().stop()
