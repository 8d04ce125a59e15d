"""Classrooms whose networks leave only TURN: relay-only viewers watch through coturn over UDP, then TCP,
then TLS, as each transport is blocked in turn; the TURN secret appears in no page, message or log."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright

from .browser import assert_receiving, launch, login, wait_status
from .harness import running_platform
from .test_live_journey import STANDARD_MIN_FPS, _lesson_id, _start_broadcast
from .turn import coturn

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SELECTED_PAIR_JS = """async () => {
  const stats = await window.jinshi.pc.getStats();
  let pair = null; const local = {};
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
    if (r.type === 'local-candidate') local[r.id] = r;
  });
  const candidate = pair && local[pair.localCandidateId];
  return candidate ? { type: candidate.candidateType, relayProtocol: candidate.relayProtocol || null } : null;
}"""


@contextlib.contextmanager
def blocked(rules: str) -> Iterator[None]:
    """Drop traffic matching nftables ``rules`` (output hook) while the block runs."""
    table = f"jinshi_block_{uuid.uuid4().hex[:8]}"
    spec = f"table inet {table} {{\n  chain out {{ type filter hook output priority 0; {rules} }}\n}}\n"
    subprocess.run(["nft", "-f", "-"], input=spec, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=False)


def _watch_relayed(page: Page, lesson_id: int, expected_protocol: str, who: str) -> None:
    page.goto(f"/lessons/{lesson_id}/watch/?relay=1")
    wait_status(page, "live", timeout=20)
    pair = page.evaluate(SELECTED_PAIR_JS)
    assert pair == {"type": "relay", "relayProtocol": expected_protocol}, f"{who}: {pair}"
    assert_receiving(page, min_fps=STANDARD_MIN_FPS, who=who)


def test_relay_only_classrooms_watch_through_coturn_over_udp_tcp_and_tls(
    tmp_path: Path, playwright_session: Playwright, camera_files: tuple[Path, Path]
) -> None:
    with coturn(tmp_path / "turn") as turn:
        # The blocks below hit every process on this machine; the media worker, which needs no relay of
        # its own here, must not lose its TURN allocation to them.
        env = {
            "LIVE_TURN_URLS": ",".join(turn.urls),
            "LIVE_TURN_SECRET": turn.secret,
            "LIVE_MEDIA_WORKER_TURN": "false",
        }
        with running_platform(tmp_path, extra_env=env) as platform:
            lesson_id = _lesson_id(platform)
            teacher_browser = launch(playwright_session, camera=camera_files)
            # Chromium checks the TURN server's certificate; ours is self-signed for the test.
            viewer_browser = launch(playwright_session, extra=["--ignore-certificate-errors"])
            try:
                teacher = login(teacher_browser, platform.web[0], "teacher")
                _start_broadcast(teacher, lesson_id)
                room = login(viewer_browser, platform.web[0], "classroom1")
                hello_secret_free = room.evaluate(
                    """async (id) => new Promise((resolve) => {
                      const ws = new WebSocket(`ws://${location.host}/ws/lessons/${id}/`);
                      ws.onmessage = (e) => { ws.close(); resolve(e.data); };
                    })""",
                    lesson_id,
                )
                assert turn.secret not in hello_secret_free
                assert "turn:" in hello_secret_free  # the page did get TURN servers, with minted credentials

                _watch_relayed(room, lesson_id, "udp", "classroom1 relayed over UDP")
                with blocked(f"ip daddr {turn.host} udp dport {turn.port} drop;"):
                    room2 = login(viewer_browser, platform.web[0], "classroom2")
                    _watch_relayed(room2, lesson_id, "tcp", "classroom2 relayed over TCP")
                    with blocked(f"ip daddr {turn.host} tcp dport {turn.port} drop;"):
                        late = login(viewer_browser, platform.web[0], "shiqu_teacher")
                        _watch_relayed(late, lesson_id, "tls", "a teacher relayed over TLS")
                for page in (teacher, room):
                    assert turn.secret not in page.content()
            finally:
                teacher_browser.close()
                viewer_browser.close()
            logs = "".join(platform.log(name) for name in ("web1", "jobs")) + turn.log.read_text()
            assert turn.secret not in logs
