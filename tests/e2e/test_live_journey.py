"""Whole live-lesson journeys in real Chromium: a teacher streams Big Buck Bunny as camera and microphone,
classrooms watch, the lesson ends, the recording plays and seeks in the library.

Run on embedded defaults (one daphne, in-process media worker, SQLite) and on PostgreSQL + Redis with the
media worker as its own process and the viewers on another daphne process than the teacher.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright

from live.media.recording import probe_recording

from .browser import (
    assert_receiving,
    frames,
    launch,
    login,
    status,
    wait_receiving,
    wait_status,
)
from .harness import Platform, postgres_database, running_platform, wait_until
from .netcut import udp_port_cut

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

FPS = 25
STANDARD_MIN_FPS = 0.7 * FPS
LIGHT_MIN_FPS = 10.0

LOCAL_PORT_JS = """async () => {
  const stats = await window.jinshi.pc.getStats();
  let pair = null; const local = {};
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
    if (r.type === 'local-candidate') local[r.id] = r;
  });
  return pair ? local[pair.localCandidateId].port : null;
}"""

PLAYBACK_JS = """async (target) => {
  const v = document.getElementById('player');
  if (v.readyState < 1) await new Promise((r) => v.addEventListener('loadedmetadata', r, { once: true }));
  const duration = v.duration;
  v.muted = true;
  await v.play();
  const seeked = new Promise((r) => v.addEventListener('seeked', r, { once: true }));
  v.currentTime = target;
  await seeked;
  const before = v.getVideoPlaybackQuality().totalVideoFrames;
  const t0 = v.currentTime;
  await new Promise((r) => setTimeout(r, 1500));
  const decoded = v.getVideoPlaybackQuality().totalVideoFrames - before;
  return { duration, seekedTo: t0, after: v.currentTime, decoded };
}"""


@dataclass
class Recorded:
    item_id: int
    publish_seconds: float
    span_seconds: float


def _lesson_id(platform: Platform) -> int:
    return int(platform.shell("from live.models import Lesson; print(Lesson.objects.get().pk)").strip())


def _start_broadcast(teacher: Page, lesson_id: int) -> float:
    teacher.goto(f"/lessons/{lesson_id}/broadcast/")
    teacher.wait_for_selector("#start:not([disabled])", timeout=20_000)
    teacher.click("#start")
    wait_status(teacher, "on_air", timeout=20)
    return time.monotonic()


def _wait_recording(platform: Platform, lesson_id: int, *, timeout: float = 120) -> int:
    code = (
        f"from live.models import Lesson; l = Lesson.objects.get(pk={lesson_id}); "
        "print(l.recording_state, l.recording_item_id or 0, l.recording_notes.replace(chr(10), ' '))"
    )

    def ready() -> int | None:
        state, item, *notes = platform.shell(code).split(" ")
        assert state != "failed", f"recording failed: {' '.join(notes)}\n{platform.log('jobs')[-3000:]}"
        return int(item) if state == "ready" else None

    return int(wait_until(ready, timeout=timeout, interval=1.0, what="the recording to reach the library"))


def _check_recording(page: Page, tmp: Path, recorded: Recorded) -> None:
    """The library lists it; the browser plays and seeks it; decoding it gives the frames and duration."""
    page.goto("/library/")
    page.wait_for_selector(f"[data-item='{recorded.item_id}']")
    page.goto(f"/library/{recorded.item_id}/")
    target = recorded.span_seconds / 2
    playback = page.evaluate(PLAYBACK_JS, target)
    assert playback["duration"] == pytest.approx(recorded.span_seconds, abs=1.5), playback
    assert abs(playback["seekedTo"] - target) < 1.0, playback
    assert playback["after"] > playback["seekedTo"], f"playback did not advance after seeking: {playback}"
    assert playback["decoded"] > 10, f"too few frames decoded after seeking: {playback}"

    response = page.request.get(f"/library/{recorded.item_id}/video")
    assert response.status == 200
    path = tmp / "downloaded.webm"
    path.write_bytes(response.body())
    probe = probe_recording(path)
    print(f"recording: {probe} for {recorded}")
    assert probe.frames >= 0.9 * FPS * recorded.publish_seconds, (probe, recorded)
    assert abs(probe.duration_s - recorded.span_seconds) <= 1.0, (probe, recorded)
    assert probe.has_audio


def run_journey(platform: Platform, playwright: Playwright, camera: tuple[Path, Path], tmp: Path) -> None:
    teacher_base = platform.web[0]
    viewer_base = platform.web[-1]  # another daphne process when there are two
    lesson_id = _lesson_id(platform)
    teacher_browser = launch(playwright, camera=camera)
    viewer_browser = launch(playwright)
    try:
        # A projector page opened before the lesson starts plays by itself when it goes live. This
        # classroom has granted camera permission, so its browser offers raw host addresses.
        room1 = login(viewer_browser, viewer_base, "classroom1", permissions=["camera", "microphone"])
        room1.goto(f"/lessons/{lesson_id}/watch/")
        wait_status(room1, "waiting")

        teacher = login(teacher_browser, teacher_base, "teacher")
        first_on_air = _start_broadcast(teacher, lesson_id)
        wait_status(room1, "live", timeout=15)
        assert_receiving(room1, min_fps=STANDARD_MIN_FPS, who="classroom1")

        # A second classroom without camera permission: its host candidates are mDNS names.
        room2 = login(viewer_browser, viewer_base, "classroom2")
        room2.goto(f"/lessons/{lesson_id}/watch/")
        wait_status(room2, "live", timeout=15)
        assert ".local" in room2.evaluate("window.jinshi.pc.localDescription.sdp")
        assert_receiving(room2, min_fps=STANDARD_MIN_FPS, who="classroom2 (mDNS)")

        wait_until(
            lambda: teacher.text_content("#viewer-count") == "2",
            timeout=10,
            what="2 viewers on the teacher page",
        )
        names = teacher.inner_text("#viewer-list")
        assert "四年级一班" in names and "七年级二班" in names, names

        # A late joiner gets a picture within 1 s although the periodic keyframe interval is 10 s.
        late = login(viewer_browser, viewer_base, "shiqu_teacher")
        late.goto(f"/lessons/{lesson_id}/watch/")
        wait_status(late, "live", timeout=15)
        timeline = late.evaluate("window.jinshi.timeline")
        first_frame = (timeline["firstFrameAt"] - timeline["connectedAt"]) / 1000
        assert first_frame < 1.0, f"late joiner waited {first_frame:.2f} s for a picture"
        print(f"late joiner: first frame {first_frame:.3f} s after connecting")
        late.context.close()

        # Classroom 1's link is cut: it notices and recovers by itself.
        port = room1.evaluate(LOCAL_PORT_JS)
        assert port, "no selected ICE candidate pair on classroom1"
        with udp_port_cut(int(port)):
            cut_at = time.monotonic()
            wait_until(lambda: status(room1) == "reconnecting", timeout=6, interval=0.05, what="reconnecting shown")
            wait_until(lambda: status(room1) == "live", timeout=8, interval=0.05, what="classroom1 live again")
            recovered = time.monotonic() - cut_at
        assert recovered <= 5.0, f"classroom1 took {recovered:.1f} s to recover"
        print(f"cut link: classroom1 live again {recovered:.2f} s after the cut")
        assert_receiving(room1, min_fps=STANDARD_MIN_FPS, who="classroom1 after the cut")

        # Classroom 2 switches to the light layer and back, without reconnecting.
        pc_before = room2.evaluate("window.jinshi.timeline.offerAt")
        room2.click("#layer-light")
        wait_until(
            lambda: room2.evaluate("document.getElementById('remote').videoWidth") == 320,
            timeout=5,
            what="320 px wide",
        )
        assert_receiving(room2, min_fps=LIGHT_MIN_FPS, who="classroom2 on light")
        room2.click("#layer-standard")
        wait_until(
            lambda: room2.evaluate("document.getElementById('remote').videoWidth") == 640,
            timeout=5,
            what="640 px wide",
        )
        assert room2.evaluate("window.jinshi.timeline.offerAt") == pc_before, "switching layers reconnected"

        # The teacher reloads: the page resumes the same lesson; viewers recover without reloading.
        reload_at = time.monotonic()
        teacher.reload()
        wait_status(teacher, "on_air", timeout=20)
        gap = time.monotonic() - reload_at
        print(f"teacher reload: on air again after {gap:.2f} s")
        for page, who in ((room1, "classroom1"), (room2, "classroom2")):
            wait_receiving(page, timeout=10, who=f"{who} after the teacher reloaded")
            assert_receiving(page, min_fps=STANDARD_MIN_FPS, who=f"{who} after the teacher reloaded")

        time.sleep(3)  # a few more seconds of lesson after the reload, so the last piece has content
        teacher.once("dialog", lambda dialog: dialog.accept())
        teacher.click("#end")
        ended_at = time.monotonic()
        for page in (teacher, room1, room2):
            wait_status(page, "ended", timeout=10)
        assert frames(room1) >= 0

        span = ended_at - first_on_air
        item_id = _wait_recording(platform, lesson_id)
        _check_recording(room1, tmp, Recorded(item_id=item_id, publish_seconds=span - gap, span_seconds=span))
    finally:
        teacher_browser.close()
        viewer_browser.close()


def test_a_live_lesson_end_to_end_on_embedded_defaults(
    tmp_path: Path, playwright_session: Playwright, camera_files: tuple[Path, Path]
) -> None:
    env = {"LIVE_KEYFRAME_INTERVAL_SECONDS": "10"}
    with running_platform(tmp_path, extra_env=env) as platform:
        run_journey(platform, playwright_session, camera_files, tmp_path)


def test_a_live_lesson_end_to_end_on_postgres_and_redis_across_processes(
    tmp_path: Path,
    playwright_session: Playwright,
    camera_files: tuple[Path, Path],
    postgres_admin_url: str,
    redis_test_url: str,
) -> None:
    env = {"LIVE_KEYFRAME_INTERVAL_SECONDS": "10"}
    with (
        postgres_database(postgres_admin_url) as database_url,
        running_platform(
            tmp_path,
            database_url=database_url,
            redis_url=redis_test_url,
            web_processes=2,
            external_media=True,
            extra_env=env,
        ) as platform,
    ):
        assert platform.web[0] != platform.web[-1]
        run_journey(platform, playwright_session, camera_files, tmp_path)


def test_a_media_worker_killed_mid_lesson_keeps_what_was_recorded(
    tmp_path: Path,
    playwright_session: Playwright,
    camera_files: tuple[Path, Path],
    postgres_admin_url: str,
    redis_test_url: str,
) -> None:
    with (
        postgres_database(postgres_admin_url) as database_url,
        running_platform(
            tmp_path, database_url=database_url, redis_url=redis_test_url, external_media=True
        ) as platform,
    ):
        lesson_id = _lesson_id(platform)
        browser = launch(playwright_session, camera=camera_files)
        try:
            teacher = login(browser, platform.web[0], "teacher")
            on_air = _start_broadcast(teacher, lesson_id)
            room = login(browser, platform.web[0], "classroom1")
            room.goto(f"/lessons/{lesson_id}/watch/")
            wait_status(room, "live", timeout=15)
            time.sleep(max(0.0, 18 - (time.monotonic() - on_air)))  # ~18 s of lesson before the crash
            platform.kill("media")
            killed_after = time.monotonic() - on_air
            teacher.once("dialog", lambda dialog: dialog.accept())
            teacher.click("#end")
            wait_status(room, "ended", timeout=10)
            item_id = _wait_recording(platform, lesson_id)
            room.goto(f"/library/{item_id}/")
            playback = room.evaluate(PLAYBACK_JS, 2.0)
            assert playback["after"] > playback["seekedTo"] and playback["decoded"] > 10, playback
            response = room.request.get(f"/library/{item_id}/video")
            path = tmp_path / "after-kill.webm"
            path.write_bytes(response.body())
            probe = probe_recording(path)
            # At most the last ~10 s are lost; what is kept is whole.
            assert probe.duration_s >= killed_after - 10.0, (probe, killed_after)
            assert probe.frames >= 0.9 * FPS * (killed_after - 10.0), (probe, killed_after)
        finally:
            browser.close()


def test_a_teacher_who_leaves_without_ending_keeps_the_recording(
    tmp_path: Path, playwright_session: Playwright, camera_files: tuple[Path, Path]
) -> None:
    """The teacher's browser goes away mid-lesson: after the grace period the lesson ends by itself and what
    was recorded reaches the library."""
    with running_platform(tmp_path, extra_env={"LIVE_PUBLISHER_GRACE_SECONDS": "3"}) as platform:
        lesson_id = _lesson_id(platform)
        browser = launch(playwright_session, camera=camera_files)
        viewer_browser = launch(playwright_session)
        try:
            room = login(viewer_browser, platform.web[0], "classroom1")
            room.goto(f"/lessons/{lesson_id}/watch/")
            teacher = login(browser, platform.web[0], "teacher")
            on_air = _start_broadcast(teacher, lesson_id)
            wait_status(room, "live", timeout=15)
            time.sleep(max(0.0, 8 - (time.monotonic() - on_air)))
            teacher.context.close()  # closes the tab: socket and peer connection go, nobody pressed "end"
            left_after = time.monotonic() - on_air
            wait_status(room, "ended", timeout=20)
            reason = platform.shell(
                f"from live.models import Lesson; print(Lesson.objects.get(pk={lesson_id}).end_reason)"
            )
            assert reason.strip() == "publisher_lost"
            item_id = _wait_recording(platform, lesson_id)
            response = room.request.get(f"/library/{item_id}/video")
            path = tmp_path / "left.webm"
            path.write_bytes(response.body())
            probe = probe_recording(path)
            assert abs(probe.duration_s - left_after) <= 1.0, (probe, left_after)
            assert probe.frames >= 0.9 * FPS * left_after, (probe, left_after)
        finally:
            browser.close()
            viewer_browser.close()
