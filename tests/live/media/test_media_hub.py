"""The lesson hub with real aiortc peers: a teacher playing a real clip, classrooms decoding it."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket

from live.media import InvalidOffer, LessonHub, UnknownLayer
from tests.support.rtc import Viewer, wait_until

from .conftest import HubFactory, Peers

pytestmark = pytest.mark.asyncio

STANDARD_FPS = 25
LIGHT_FPS = 15


async def frames_per_second(viewers: list[Viewer], seconds: float = 2.0) -> list[float]:
    """Frame rate each viewer decoded over about ``seconds`` (divided by the time really elapsed)."""
    before = [v.reception.video_frames for v in viewers]
    started = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    return [(v.reception.video_frames - b) / elapsed for v, b in zip(viewers, before, strict=True)]


async def first_frame(viewer: Viewer, within: float = 3.0) -> None:
    await wait_until(lambda: viewer.reception.first_video_at is not None, within=within, what="a first frame")


def without_codec(sdp: str, name: str) -> str:
    """Remove a codec (and its RTX) from an offer, as a browser without it would send."""
    lines = sdp.split("\r\n")
    removed = {line.split()[0].split(":")[1] for line in lines if line.startswith("a=rtpmap:") and f" {name}/" in line}
    removed |= {
        line.split()[0].split(":")[1]
        for line in lines
        if line.startswith("a=fmtp:") and any(f"apt={pt}" in line for pt in removed)
    }
    kept = []
    for line in lines:
        if line.startswith("m=video"):
            line = " ".join(field for i, field in enumerate(line.split()) if i < 3 or field not in removed)
        elif line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")) and line.split()[0].split(":")[1] in removed:
            continue
        kept.append(line)
    return "\r\n".join(kept)


def stat(hub: LessonHub, key: str, layer: str | None = None) -> int:
    value = hub.stats()[key]
    if layer is not None:
        assert isinstance(value, dict)
        value = value[layer]
    assert isinstance(value, int)
    return value


@pytest.mark.timeout(30)
async def test_a_viewer_receives_the_lessons_picture_and_sound(make_hub: HubFactory, peers: Peers) -> None:
    hub = make_hub()
    await peers.publish(hub)
    viewer = await peers.watch(hub, "classroom-1")
    await first_frame(viewer)
    audio_before = viewer.reception.audio_frames

    [fps] = await frames_per_second([viewer])

    assert fps == pytest.approx(STANDARD_FPS, abs=3)
    assert viewer.current_size == (640, 360)
    # ~50 Opus frames of 20 ms per second
    assert viewer.reception.audio_frames - audio_before >= 70
    await wait_until(lambda: viewer.reception.sample is not None, within=2, what="a sampled frame")
    sample = viewer.reception.sample
    assert sample is not None and float(np.std(sample)) > 20.0  # a real picture, not a flat colour


@pytest.mark.timeout(30)
async def test_encoding_work_does_not_grow_with_four_viewers(make_hub: HubFactory, peers: Peers) -> None:
    hub = make_hub()
    await peers.publish(hub)
    viewers = [await peers.watch(hub, f"classroom-{n}", "light" if n == 4 else "standard") for n in range(1, 5)]
    for viewer in viewers:
        await first_frame(viewer)

    frames_in = stat(hub, "frames_in")
    standard = stat(hub, "frames_encoded", "standard")
    light = stat(hub, "frames_encoded", "light")
    started = time.monotonic()
    rates = await frames_per_second(viewers, 3.0)
    elapsed = time.monotonic() - started
    frames_in = stat(hub, "frames_in") - frames_in
    standard = stat(hub, "frames_encoded", "standard") - standard
    light = stat(hub, "frames_encoded", "light") - light

    # One encode per source frame per layer, whatever the number of viewers.
    assert frames_in == pytest.approx(elapsed * STANDARD_FPS, rel=0.15)
    assert standard == pytest.approx(frames_in, abs=2)
    assert light == pytest.approx(frames_in * LIGHT_FPS / STANDARD_FPS, abs=2)
    assert rates[:3] == pytest.approx([STANDARD_FPS] * 3, abs=3)
    assert rates[3] == pytest.approx(LIGHT_FPS, abs=2)
    assert hub.stats()["viewers"] == {"standard": 3, "light": 1}


@pytest.mark.timeout(30)
async def test_set_layer_switches_the_picture_size_without_renegotiation_and_back(
    make_hub: HubFactory, peers: Peers
) -> None:
    hub = make_hub()
    await peers.publish(hub)
    viewer = await peers.watch(hub, "classroom-1")
    await first_frame(viewer)
    assert viewer.current_size == (640, 360)
    assert viewer.pc.localDescription is not None
    offer_sdp = viewer.pc.localDescription.sdp

    await hub.set_layer("classroom-1", "light")
    switch = await wait_until(lambda: viewer.current_size == (320, 180), within=2, what="the light layer")
    [fps] = await frames_per_second([viewer], 1.5)
    assert switch < 1.0
    assert fps == pytest.approx(LIGHT_FPS, abs=2.5)
    assert hub.stats()["viewers"] == {"standard": 0, "light": 1}

    await hub.set_layer("classroom-1", "standard")
    await wait_until(lambda: viewer.current_size == (640, 360), within=2, what="the standard layer again")
    [fps] = await frames_per_second([viewer], 1.5)
    assert fps == pytest.approx(STANDARD_FPS, abs=4)
    # The same negotiated session throughout: no new offer, no new transceiver.
    assert viewer.pc.localDescription is not None and viewer.pc.localDescription.sdp == offer_sdp
    assert viewer.pc.signalingState == "stable" and len(viewer.pc.getTransceivers()) == 2
    with pytest.raises(UnknownLayer):
        await hub.set_layer("classroom-1", "ultra")


@pytest.mark.timeout(30)
async def test_late_joiners_see_a_picture_within_a_second_even_with_a_ten_second_keyframe_interval(
    make_hub: HubFactory, peers: Peers
) -> None:
    hub = make_hub(keyframe_interval_s=10.0)
    await peers.publish(hub)
    # Well past the first keyframe: the next periodic one is 10 s away.
    await wait_until(lambda: stat(hub, "frames_in") >= 50, within=5, what="two seconds of publishing")

    raw = await peers.watch(hub, "classroom-raw")
    await first_frame(raw, within=3)
    mdns = await peers.watch(hub, "classroom-mdns", mdns=True)  # a browser without camera permission
    await first_frame(mdns, within=3)

    assert raw.join_to_first_frame is not None and raw.join_to_first_frame < 1.0
    assert mdns.join_to_first_frame is not None and mdns.join_to_first_frame < 1.0
    # The pictures came from forced keyframes, not from the periodic one.
    assert stat(hub, "keyframes", "standard") <= 4


@pytest.mark.timeout(30)
async def test_a_viewer_who_joins_before_the_teacher_gets_the_picture_when_the_teacher_publishes(
    make_hub: HubFactory, peers: Peers
) -> None:
    hub = make_hub()
    viewer = await peers.watch(hub, "early-classroom")
    await wait_until(lambda: hub.stats()["viewers_connected"] == 1, within=3, what="the viewer's connection")
    assert viewer.reception.video_frames == 0

    published_at = time.monotonic()
    await peers.publish(hub)
    await first_frame(viewer, within=3)

    assert viewer.reception.first_video_at is not None
    assert viewer.reception.first_video_at - published_at < 1.5
    [fps] = await frames_per_second([viewer], 1.0)
    assert fps == pytest.approx(STANDARD_FPS, abs=4)


@pytest.mark.timeout(40)
async def test_the_picture_comes_back_after_a_teacher_reload_without_the_viewer_reconnecting(
    make_hub: HubFactory, peers: Peers
) -> None:
    lost: list[float] = []

    async def on_publisher_lost() -> None:
        lost.append(time.monotonic())

    hub = make_hub(on_publisher_lost=on_publisher_lost)
    first = await peers.publish(hub)
    viewer = await peers.watch(hub, "classroom-1")
    await first_frame(viewer)
    viewer_pc_state = viewer.pc.connectionState

    # Reload: a new peer connection publishes while the old one still exists.
    second = await peers.publish(hub)
    assert first.pc.connectionState in ("closed", "failed", "connected")
    frames = viewer.reception.video_frames
    await wait_until(lambda: viewer.reception.video_frames >= frames + 25, within=3, what="frames after reload")
    assert lost == []  # a replacement is not a loss
    await first.close()

    # The teacher goes away: reported once; the viewer's connection stays up.
    await second.close()
    await wait_until(lambda: len(lost) == 1, within=5, what="on_publisher_lost")
    assert hub.stats()["publisher_connected"] is False
    await asyncio.sleep(0.3)
    frames = viewer.reception.video_frames
    await peers.publish(hub)
    await wait_until(lambda: viewer.reception.video_frames >= frames + 25, within=3, what="frames after return")

    assert viewer.pc.connectionState == viewer_pc_state == "connected"
    assert len(viewer.pc.getTransceivers()) == 2
    assert hub.stats()["publish_sessions"] == 3
    assert len(lost) == 1


@pytest.mark.timeout(30)
async def test_a_camera_switch_keeps_the_layer_sizes_and_the_picture_flowing(
    make_hub: HubFactory, peers: Peers
) -> None:
    hub = make_hub()
    publisher = await peers.publish(hub)
    standard = await peers.watch(hub, "classroom-standard")
    light = await peers.watch(hub, "classroom-light", "light")
    await first_frame(standard)
    await first_frame(light)

    for width, height in ((960, 540), (640, 480)):  # a bigger camera, then a 4:3 webcam
        publisher.video_track.set_size(width, height)
        await asyncio.sleep(0.3)  # the teacher's own encoder restarts at the new size
        rates = await frames_per_second([standard, light], 1.5)
        assert rates[0] >= 0.7 * STANDARD_FPS
        assert rates[1] >= 0.7 * LIGHT_FPS
    assert [size[1:] for size in standard.reception.sizes] == [(640, 360)]
    assert [size[1:] for size in light.reception.sizes] == [(320, 180)]


@pytest.mark.timeout(30)
async def test_a_viewers_picture_loss_indication_forces_a_keyframe_on_its_layer(
    make_hub: HubFactory, peers: Peers
) -> None:
    hub = make_hub(keyframe_interval_s=10.0, keyframe_min_gap_s=0.5)
    await peers.publish(hub)
    viewer = await peers.watch(hub, "classroom-1", "light")
    await first_frame(viewer)
    await asyncio.sleep(0.6)  # out of the rate-limit gap of the joining keyframe
    keyframes = stat(hub, "keyframes", "light")
    standard_keyframes = stat(hub, "keyframes", "standard")

    # Feed a real PLI through aiortc's RTCP handling of the hub's sender.
    sender = next(
        t.sender
        for t in hub._peers["classroom-1"].pc.getTransceivers()  # the hub's side of this viewer
        if t.kind == "video"
    )
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc))

    await wait_until(lambda: stat(hub, "keyframes", "light") > keyframes, within=1, what="a forced keyframe")
    assert stat(hub, "keyframes", "standard") == standard_keyframes  # only the viewer's layer


@pytest.mark.timeout(20)
async def test_bad_offers_are_refused_and_leave_no_peer_behind(make_hub: HubFactory, peers: Peers) -> None:
    hub = make_hub()
    with pytest.raises(InvalidOffer):
        await hub.watch("x", "hello")
    viewer = Viewer()
    viewer.pc.addTransceiver("video", direction="recvonly")
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    assert viewer.pc.localDescription is not None
    offer = viewer.pc.localDescription.sdp
    with pytest.raises(UnknownLayer):
        await hub.watch("x", offer, "ultra")
    # A viewer that cannot decode VP8 (only H.264 offered) cannot use the shared packets.
    with pytest.raises(InvalidOffer):
        await hub.watch("x", without_codec(offer, "VP8"))
    assert hub.stats()["peers"] == 0


@pytest.mark.timeout(30)
async def test_closing_the_hub_closes_every_connection_and_leaves_no_task_running(
    make_hub: HubFactory, peers: Peers
) -> None:
    hub = make_hub()
    await peers.publish(hub)
    viewer = await peers.watch(hub, "classroom-1")
    await first_frame(viewer)
    hub_pcs = [peer.pc for peer in hub._peers.values()]

    await hub.close()
    await peers.close_all()  # the test's own peers, so that only the hub could leave tasks behind

    assert all(pc.connectionState == "closed" for pc in hub_pcs)
    assert hub.stats()["peers"] == 0
    await asyncio.sleep(0.1)
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert leftover == []
    with pytest.raises(RuntimeError):
        await hub.watch("late", "v=0\r\nm=video 9 UDP 96\r\n")
