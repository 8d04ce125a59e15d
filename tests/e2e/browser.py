"""Chromium helpers for journeys: launch with a real clip as camera, log in, and measure what a viewer sees."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Playwright

from .harness import CHROMIUM, CHROMIUM_FLAGS, wait_until

DEMO_PASSWORD = "jinshi-demo"

# Run in the page: the decoded video frame counter of the current peer connection.
FRAMES_JS = """async () => {
  const pc = window.jinshi && window.jinshi.pc;
  if (!pc) return 0;
  const stats = await pc.getStats();
  let frames = 0;
  stats.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') frames = r.framesDecoded || 0; });
  return frames;
}"""

# Run in the page: draw the current video frame and return the luma standard deviation (0 = flat colour).
SAMPLE_JS = """() => {
  const video = document.querySelector('video');
  if (!video || !video.videoWidth) return -1;
  const canvas = document.createElement('canvas');
  canvas.width = 160; canvas.height = 90;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0, sq = 0, n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
    sum += y; sq += y * y; n += 1;
  }
  const mean = sum / n;
  return Math.sqrt(Math.max(sq / n - mean * mean, 0));
}"""


def launch(
    playwright: Playwright,
    *,
    camera: tuple[Path, Path] | None = None,
    extra: list[str] | None = None,
    netns: str | None = None,
) -> Browser:
    """Chromium with the journey flags; ``camera`` plays a clip as camera and microphone (and grants them
    without asking); ``netns`` runs the browser inside that network namespace (see shiqu_link.py)."""
    args = list(CHROMIUM_FLAGS) + list(extra or [])
    if camera is not None:
        y4m, wav = camera
        args += [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}",
            f"--use-file-for-fake-audio-capture={wav}",
        ]
    if netns is None:
        return playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
    # Playwright runs one executable: a wrapper that enters the namespace first. Chromium starts its other
    # processes from its own binary, so the wrapper is not needed once the browser is up.
    folder = Path(tempfile.mkdtemp(prefix="chromium-netns-"))
    try:
        wrapper = folder / "chromium"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec "{netns}" {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        return playwright.chromium.launch(executable_path=str(wrapper), args=args, headless=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def login(browser: Browser, base: str, username: str, *, permissions: list[str] | None = None) -> Page:
    context = browser.new_context(base_url=base, permissions=permissions or [], viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def status(page: Page) -> str:
    return str(page.get_attribute("#status", "data-status"))


def wait_status(page: Page, wanted: str, *, timeout: float = 20) -> None:
    wait_until(lambda: status(page) == wanted, timeout=timeout, what=f"status {wanted!r} on {page.url}")


def frames(page: Page) -> int:
    return int(page.evaluate(FRAMES_JS))


def frame_rate(page: Page, seconds: float = 2.0) -> float:
    """Decoded frames per second over ``seconds`` (framesDecoded, not currentTime: audio moves that)."""
    start = frames(page)
    t0 = time.monotonic()
    time.sleep(seconds)
    return (frames(page) - start) / (time.monotonic() - t0)


def picture_detail(page: Page) -> float:
    return float(page.evaluate(SAMPLE_JS))


def assert_receiving(page: Page, *, min_fps: float, who: str) -> None:
    """The viewer decodes frames at a steady rate and the picture is not a flat colour."""
    rate = frame_rate(page)
    assert rate >= min_fps, f"{who}: only {rate:.1f} decoded frames/s (wanted >= {min_fps})"
    detail = picture_detail(page)
    assert detail > 8, f"{who}: the sampled frame is flat (luma std {detail:.1f})"


def wait_receiving(page: Page, *, timeout: float, who: str) -> float:
    """Seconds until decoded frames rise again."""
    t0 = time.monotonic()
    start = frames(page)
    wait_until(lambda: frames(page) > start + 3, timeout=timeout, interval=0.05, what=f"{who} receiving frames")
    return time.monotonic() - t0


@contextmanager
def pages_closed(*pages: Page) -> Iterator[None]:
    try:
        yield
    finally:
        for page in pages:
            page.context.close()


def js(page: Page, expression: str) -> Any:
    return page.evaluate(expression)
