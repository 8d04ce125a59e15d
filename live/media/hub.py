"""A lesson's media hub: one teacher in, many classrooms out, recorded on the way.

The teacher's peer connection is decoded once; each quality layer encodes
once (:mod:`live.media.video`), the sound is encoded once
(:mod:`live.media.audio`), and every viewer's peer connection sends those
shared packets (:mod:`live.media.tracks`). Encoding cost therefore does not
grow with the audience; a viewer costs packetisation and encryption only.
The recorder is one more consumer of the STANDARD layer and the sound
(:mod:`live.media.recording`).

Pure asyncio/aiortc/PyAV, no Django: the worker process that owns a lesson
creates a :class:`LessonHub` and relays signalling to it. All methods must
be called from the event loop the hub runs on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from live.media.audio import OpusEncoderPipeline
from live.media.clock import AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE, MediaClock, SourceTimeline
from live.media.recording import PieceInfo, PieceRecorder
from live.media.sdp import InvalidOffer, strip_mdns_candidates, validate_offer
from live.media.tracks import ViewerAudioTrack, ViewerVideoTrack
from live.media.video import LIGHT, STANDARD, LayerEncoder, LayerSpec

__all__ = [
    "LIGHT",
    "STANDARD",
    "HubClosed",
    "InvalidOffer",
    "LayerSpec",
    "LessonHub",
    "MediaConfig",
    "PieceInfo",
    "UnknownLayer",
    "UnknownPeer",
]

logger = logging.getLogger(__name__)

# aiortc routes both PLI and FIR to RTCRtpSender._send_keyframe(), which only
# flags the sender's own encoder, unused when the track yields packets. We
# replace that method on each viewer's sender instance (see _hook_keyframe_requests).
_KEYFRAME_HOOK = "_send_keyframe"
if not callable(getattr(RTCRtpSender, _KEYFRAME_HOOK, None)):  # pragma: no cover - aiortc upgrade guard
    raise ImportError(f"aiortc.RTCRtpSender.{_KEYFRAME_HOOK} is gone: keyframe requests would be lost")

Callback = Callable[[], Awaitable[None]]


class UnknownLayer(ValueError):
    """The requested quality layer does not exist in this hub's configuration."""


class UnknownPeer(KeyError):
    """No viewer with that peer id is connected to this hub."""


class HubClosed(RuntimeError):
    """The hub has been closed; it accepts no more peers."""


@dataclass(frozen=True)
class MediaConfig:
    """How a lesson's media is encoded, shared and recorded."""

    # Our own STUN/TURN servers. Empty means host candidates only: aiortc
    # would otherwise use Google's STUN server (RTCConfiguration's default).
    ice_servers: list[RTCIceServer] = field(default_factory=list)
    keyframe_interval_s: float = 10.0  # periodic keyframes of the shared encoders
    keyframe_min_gap_s: float = 0.5  # at most one forced keyframe per encoder per gap
    piece_seconds: float = 5.0  # recording piece length
    layers: tuple[LayerSpec, ...] = (STANDARD, LIGHT)
    recording_layer: str = "standard"  # the layer recorded; "" records nothing
    audio_bit_rate: int = 32_000  # mono Opus for speech, with in-band FEC
    connect_timeout_s: float = 30.0  # a peer not connected by then is dropped

    def __post_init__(self) -> None:
        names = [layer.name for layer in self.layers]
        if not names or len(set(names)) != len(names):
            raise ValueError("layers need unique names")
        if self.recording_layer and self.recording_layer not in names:
            raise ValueError(f"recording layer {self.recording_layer!r} is not a layer")


@dataclass(eq=False)
class _Peer:
    peer_id: str
    role: Literal["publisher", "viewer"]
    pc: RTCPeerConnection
    video: ViewerVideoTrack | None = None
    audio: ViewerAudioTrack | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    sources: set[MediaStreamTrack] = field(default_factory=set)  # publisher tracks still live
    primary: dict[str, MediaStreamTrack] = field(default_factory=dict)  # the lesson's track per kind
    connected: bool = False
    closing: bool = False
    replaced: bool = False


class _Engine:
    """The shared encoders and the recorder, created on first use inside the loop."""

    def __init__(self, hub: LessonHub) -> None:
        config = hub.config
        tag = f"media-{hub.lesson_key}"
        self.clock = MediaClock()
        self.video_timeline = SourceTimeline(self.clock, VIDEO_CLOCK_RATE)
        self.audio_timeline = SourceTimeline(self.clock, AUDIO_CLOCK_RATE)
        self.layers: dict[str, LayerEncoder] = {
            spec.name: LayerEncoder(
                spec,
                keyframe_interval_s=config.keyframe_interval_s,
                keyframe_min_gap_s=config.keyframe_min_gap_s,
                now=self.clock.now,
                thread_name=f"{tag}-{spec.name}",
            )
            for spec in config.layers
        }
        self.audio = OpusEncoderPipeline(bit_rate=config.audio_bit_rate, thread_name=f"{tag}-opus")
        self.recorder: PieceRecorder | None = None
        if config.recording_layer:
            layer = self.layers[config.recording_layer]
            self.recorder = PieceRecorder(
                hub.lesson_key,
                hub.spool_dir / hub.lesson_key,
                layer=layer.spec,
                piece_seconds=config.piece_seconds,
                audio_bit_rate=config.audio_bit_rate,
                clock=self.clock,
                request_keyframe=layer.request_keyframe,
                on_piece=hub._on_piece,
                thread_name=f"{tag}-rec",
            )
            layer.fanout.add(self.recorder.video_sink)
            self.audio.fanout.add(self.recorder.audio_sink)

    async def close(self) -> None:
        # The recorder first: it reports the last piece, and no more packets matter.
        if self.recorder is not None:
            await self.recorder.close()
        for layer in self.layers.values():
            await layer.close()
        await self.audio.close()


class LessonHub:
    """The media of one lesson (see module docstring)."""

    def __init__(
        self,
        lesson_key: str,
        *,
        spool_dir: Path,
        config: MediaConfig,
        on_piece: Callable[[PieceInfo], Awaitable[None]] | None = None,
        on_viewer_change: Callback | None = None,
        on_publisher_lost: Callback | None = None,
    ) -> None:
        """Nothing starts until the first ``publish`` or ``watch``.

        ``on_piece``: a recording piece was closed (awaited in order, one at a
        time). ``on_viewer_change``: a viewer joined, connected, switched layer
        or left. ``on_publisher_lost``: the current publisher's connection
        failed, closed or was removed (not when a new ``publish`` replaces
        it, and not on :meth:`close`). Callback errors are logged, not raised.
        """
        if not lesson_key or "/" in lesson_key or lesson_key in {".", ".."}:
            raise ValueError("lesson_key must be a plain name (it names the spool directory)")
        self.lesson_key = lesson_key
        self.spool_dir = spool_dir
        self.config = config
        self._on_piece_callback = on_piece
        self._on_viewer_change = on_viewer_change
        self._on_publisher_lost = on_publisher_lost
        self._engine: _Engine | None = None
        self._peers: dict[str, _Peer] = {}
        self._publisher: _Peer | None = None
        self._callbacks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._frames_in = 0
        self._audio_frames_in = 0
        self._publish_sessions = 0

    # -- public API -----------------------------------------------------------

    async def publish(self, peer_id: str, offer_sdp: str) -> str:
        """Accept the teacher's offer; return the answer SDP.

        A second publish (the teacher reloaded) replaces the previous
        publisher connection; viewers keep theirs and the picture returns
        without them doing anything. Raises :class:`InvalidOffer`.
        """
        sdp = self._check_offer(offer_sdp)
        engine = self._ensure_engine()
        peer = _Peer(peer_id, "publisher", self._new_peer_connection())

        @peer.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            # Every received track is consumed, used or not: an unread track
            # queues decoded frames without bound (~13 MB/s, PITFALLS.md).
            peer.sources.add(track)
            # The first track of each kind is the lesson's; any other is only drained.
            peer.primary.setdefault(track.kind, track)
            self._spawn_for(peer, self._consume_publisher_track(peer, track))

        @peer.pc.on("connectionstatechange")
        def on_state() -> None:
            state = peer.pc.connectionState
            if state == "connected":
                peer.connected = True
            elif state in ("failed", "closed"):
                self._spawn(self._publisher_gone(peer, f"connection {state}"))

        answer = await self._answer(peer, sdp)
        previous = self._publisher
        if self._closed:
            await self._close_peer(peer)
            raise HubClosed(self.lesson_key)
        await self._detach_peer_id(peer_id)
        self._peers[peer_id] = peer
        self._publisher = peer
        if previous is not None and previous is not peer:
            previous.replaced = True
            await self._close_peer(previous)
        self._publish_sessions += 1
        engine.video_timeline.restart()
        engine.audio_timeline.restart()
        if engine.recorder is not None:
            engine.recorder.start_session()  # a reload starts a new piece
        for layer in engine.layers.values():
            layer.request_keyframe()  # viewers already watching need one
        self._spawn_for(peer, self._expire_if_not_connected(peer))
        return answer

    async def watch(self, peer_id: str, offer_sdp: str, layer: str = "standard") -> str:
        """Accept a viewer's offer; return the answer SDP.

        The viewer receives the shared packets of ``layer`` and the shared
        Opus sound. A viewer may join before the teacher publishes: media
        starts when the teacher does. Raises :class:`InvalidOffer`,
        :class:`UnknownLayer`.
        """
        sdp = self._check_offer(offer_sdp)
        engine = self._ensure_engine()
        if layer not in engine.layers:
            raise UnknownLayer(layer)
        peer = _Peer(peer_id, "viewer", self._new_peer_connection())
        peer.video = ViewerVideoTrack(engine.layers, layer)
        peer.audio = ViewerAudioTrack(engine.audio.fanout)

        # Transceivers exist before the offer is applied, so the offer's m-lines
        # bind to them and only VP8 (what the shared encoders make) and Opus
        # can be negotiated, whatever order the browser listed its codecs in.
        video_transceiver = peer.pc.addTransceiver(peer.video, direction="sendonly")
        _prefer_codecs(video_transceiver, {"video/vp8", "video/rtx"})
        audio_transceiver = peer.pc.addTransceiver(peer.audio, direction="sendonly")
        _prefer_codecs(audio_transceiver, {"audio/opus"})
        _hook_keyframe_requests(video_transceiver.sender, peer.video)

        @peer.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            # A classroom that also sends (a microphone offered sendrecv) must be drained.
            self._spawn_for(peer, _drain(track))

        @peer.pc.on("connectionstatechange")
        def on_state() -> None:
            state = peer.pc.connectionState
            if state == "connected" and not peer.connected:
                peer.connected = True
                # The viewer can use a keyframe from now on (its sender also asks
                # when it starts pulling; the scheduler merges the two).
                assert peer.video is not None
                peer.video.request_keyframe()
                self._notify(self._on_viewer_change)
            elif state in ("failed", "closed"):
                self._spawn(self._viewer_gone(peer))

        def on_ended() -> None:
            # The sender stopped pulling: the remote end closed DTLS (aiortc then
            # still reports "connected") or sending failed.
            self._spawn(self._viewer_gone(peer))

        peer.video.on("ended", on_ended)
        answer = await self._answer(peer, sdp)
        if self._closed:
            await self._close_peer(peer)
            raise HubClosed(self.lesson_key)
        await self._detach_peer_id(peer_id)
        self._peers[peer_id] = peer
        self._spawn_for(peer, self._expire_if_not_connected(peer))
        self._notify(self._on_viewer_change)
        return answer

    async def set_layer(self, peer_id: str, layer: str) -> None:
        """Switch a viewer's layer without renegotiation, on the new layer's next keyframe."""
        peer = self._viewer(peer_id)
        engine = self._ensure_engine()
        if layer not in engine.layers:
            raise UnknownLayer(layer)
        assert peer.video is not None
        if peer.video.layer != layer:
            peer.video.set_layer(layer)
            self._notify(self._on_viewer_change)

    async def request_keyframe(self, peer_id: str) -> None:
        """A viewer asks for a picture refresh (rate-limited per layer encoder)."""
        peer = self._viewer(peer_id)
        assert peer.video is not None
        peer.video.request_keyframe()

    async def remove_peer(self, peer_id: str) -> None:
        """Close a peer's connection (publisher or viewer); unknown ids are ignored."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        if peer is self._publisher:
            await self._publisher_gone(peer, "removed")
        else:
            await self._viewer_gone(peer)

    @property
    def publisher_peer_id(self) -> str | None:
        """The peer id of the current publisher, if any."""
        return self._publisher.peer_id if self._publisher is not None else None

    def stats(self) -> dict[str, object]:
        """A snapshot for monitoring and tests (plain JSON-able values)."""
        engine = self._engine
        viewers = [p for p in self._peers.values() if p.role == "viewer"]
        per_layer = {spec.name: 0 for spec in self.config.layers}
        for viewer in viewers:
            if viewer.video is not None:
                per_layer[viewer.video.layer] = per_layer.get(viewer.video.layer, 0) + 1
        layers = engine.layers if engine else {}
        recorder = engine.recorder if engine else None
        return {
            "lesson_key": self.lesson_key,
            "peers": len(self._peers),
            "publisher_connected": bool(self._publisher and self._publisher.connected),
            "publish_sessions": self._publish_sessions,
            "viewers": per_layer,
            "viewers_connected": sum(1 for v in viewers if v.connected),
            "frames_in": self._frames_in,
            "audio_frames_in": self._audio_frames_in,
            "frames_encoded": {name: layer.frames_encoded for name, layer in layers.items()},
            "frames_dropped_busy": {name: layer.frames_dropped_busy for name, layer in layers.items()},
            "keyframes": {name: layer.keyframes for name, layer in layers.items()},
            "keyframe_requests": {name: layer.keyframe_scheduler.requests for name, layer in layers.items()},
            "bytes_encoded": {name: layer.bytes_encoded for name, layer in layers.items()},
            "audio_packets_encoded": engine.audio.packets_encoded if engine else 0,
            "recording": bool(recorder and recorder.recording),
            "pieces_written": recorder.pieces_written if recorder else 0,
        }

    async def close(self) -> None:
        """Close every connection, finish and report the last recording piece, stop all work."""
        if self._closed:
            return
        self._closed = True
        peers = list(self._peers.values())
        self._peers.clear()
        self._publisher = None
        await asyncio.gather(*(self._close_peer(peer) for peer in peers), return_exceptions=True)
        if self._engine is not None:
            await self._engine.close()
        for task in list(self._callbacks):
            task.cancel()
        await asyncio.gather(*self._callbacks, return_exceptions=True)

    # -- internals ------------------------------------------------------------

    def _ensure_engine(self) -> _Engine:
        if self._closed:
            raise HubClosed(self.lesson_key)
        if self._engine is None:
            self._engine = _Engine(self)
        return self._engine

    def _check_offer(self, offer_sdp: str) -> str:
        if self._closed:
            raise HubClosed(self.lesson_key)
        validate_offer(offer_sdp)
        return strip_mdns_candidates(offer_sdp)

    def _new_peer_connection(self) -> RTCPeerConnection:
        # Always pass a configuration: without one aiortc uses Google's STUN server.
        return RTCPeerConnection(RTCConfiguration(iceServers=list(self.config.ice_servers)))

    async def _answer(self, peer: _Peer, sdp: str) -> str:
        try:
            await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if peer.role == "viewer" and not any(
                t.sender.track is not None and t.mid is not None for t in peer.pc.getTransceivers()
            ):
                raise InvalidOffer("offer receives neither audio nor video")
            await peer.pc.setLocalDescription(await peer.pc.createAnswer())
        except InvalidOffer:
            await self._close_peer(peer)
            raise
        except Exception as error:  # aiortc raises ValueError, OperationError, ...
            await self._close_peer(peer)
            raise InvalidOffer(f"cannot negotiate: {error}") from error
        description = peer.pc.localDescription
        assert description is not None
        return description.sdp

    def _viewer(self, peer_id: str) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None or peer.role != "viewer":
            raise UnknownPeer(peer_id)
        return peer

    async def _detach_peer_id(self, peer_id: str) -> None:
        """The same peer id connects again: its old connection goes (silently)."""
        old = self._peers.pop(peer_id, None)
        if old is not None and old is not self._publisher:
            await self._close_peer(old)

    async def _consume_publisher_track(self, peer: _Peer, track: MediaStreamTrack) -> None:
        engine = self._engine
        assert engine is not None
        is_source = peer.primary.get(track.kind) is track
        try:
            while True:
                frame = await track.recv()
                if peer is not self._publisher or not is_source:
                    continue
                if isinstance(frame, VideoFrame):
                    self._frames_in += 1
                    pts = engine.video_timeline.map(frame.time)
                    for layer in engine.layers.values():
                        layer.offer(frame, pts)
                elif isinstance(frame, AudioFrame):
                    self._audio_frames_in += 1
                    engine.audio.offer(frame, engine.audio_timeline.map(frame.time))
        except MediaStreamError:
            pass
        peer.sources.discard(track)
        if not peer.sources and not peer.closing:
            # All the teacher's tracks ended (RTCP BYE, DTLS closed by the browser).
            self._spawn(self._publisher_gone(peer, "tracks ended"))

    async def _publisher_gone(self, peer: _Peer, reason: str) -> None:
        if peer.closing or peer.replaced:
            return
        is_current = peer is self._publisher
        logger.info("lesson %s: publisher %s gone (%s)", self.lesson_key, peer.peer_id, reason)
        if is_current:
            self._publisher = None
            engine = self._engine
            if engine is not None and engine.recorder is not None:
                engine.recorder.end_session()
        if self._peers.get(peer.peer_id) is peer:
            del self._peers[peer.peer_id]
        await self._close_peer(peer)
        if is_current and not self._closed:
            self._notify(self._on_publisher_lost)

    async def _viewer_gone(self, peer: _Peer) -> None:
        if peer.closing:
            return
        if self._peers.get(peer.peer_id) is peer:
            del self._peers[peer.peer_id]
        await self._close_peer(peer)
        if not self._closed:
            self._notify(self._on_viewer_change)

    async def _expire_if_not_connected(self, peer: _Peer) -> None:
        await asyncio.sleep(self.config.connect_timeout_s)
        if not peer.connected and not peer.closing:
            logger.info("lesson %s: peer %s never connected", self.lesson_key, peer.peer_id)
            if peer.role == "publisher":
                await self._publisher_gone(peer, "never connected")
            else:
                await self._viewer_gone(peer)

    async def _close_peer(self, peer: _Peer) -> None:
        if peer.closing:
            return
        peer.closing = True
        current = asyncio.current_task()
        for task in list(peer.tasks):
            if task is not current:
                task.cancel()
        for track in (peer.video, peer.audio):
            if track is not None:
                track.stop()
        try:
            # Shielded: a task cancelled while awaiting a second close() cancels
            # aiortc's internal "closed" future, and the first close() then
            # fails with InvalidStateError.
            await asyncio.shield(peer.pc.close())
        except Exception:  # closing must always complete
            logger.exception("lesson %s: closing peer %s failed", self.lesson_key, peer.peer_id)

    async def _on_piece(self, info: PieceInfo) -> None:
        if self._on_piece_callback is not None:
            await self._on_piece_callback(info)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._callbacks.add(task)
        task.add_done_callback(self._task_done)

    def _spawn_for(self, peer: _Peer, coroutine: Coroutine[Any, Any, None]) -> None:
        # Tasks owned by a peer are cancelled when that peer closes.
        task = asyncio.get_running_loop().create_task(coroutine)
        peer.tasks.add(task)
        task.add_done_callback(peer.tasks.discard)
        task.add_done_callback(self._log_failure)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._callbacks.discard(task)
        self._log_failure(task)

    def _log_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("lesson %s: background task failed", self.lesson_key, exc_info=task.exception())

    def _notify(self, callback: Callback | None) -> None:
        if callback is not None and not self._closed:
            self._spawn(_call(callback))


def _prefer_codecs(transceiver: RTCRtpTransceiver, mime_types: set[str]) -> None:
    capabilities = RTCRtpSender.getCapabilities(transceiver.kind)
    transceiver.setCodecPreferences([c for c in capabilities.codecs if c.mimeType.lower() in mime_types])


def _hook_keyframe_requests(sender: RTCRtpSender, track: ViewerVideoTrack) -> None:
    """Route this viewer's PLI/FIR to its layer's shared encoder.

    aiortc funnels both RTCP feedback types into ``RTCRtpSender._send_keyframe``
    after parsing them; replacing that one method on this instance reuses
    aiortc's RTCP handling unchanged. A subclass is not an option: the peer
    connection constructs its senders itself.
    """
    setattr(sender, _KEYFRAME_HOOK, track.request_keyframe)


async def _call(callback: Callback) -> None:
    await callback()


async def _drain(track: MediaStreamTrack) -> None:
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass
