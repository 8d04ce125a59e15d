"""The real-media helpers other suites build on (Chromium's fake camera files, clip tracks)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np
import pytest

from tests.support.media import clip_path, looping_clip_tracks, make_y4m_and_wav


def test_the_clip_is_found_in_scikit_videos_package_data() -> None:
    path = clip_path()
    assert path.name == "bigbuckbunny.mp4" and path.stat().st_size > 500_000
    with pytest.raises(FileNotFoundError):
        clip_path("no-such-clip.mp4")


@pytest.mark.timeout(30)
def test_fake_camera_and_microphone_files_have_the_asked_size_rate_and_length(tmp_path: Path) -> None:
    y4m, wav = make_y4m_and_wav(tmp_path, width=320, height=180, fps=20, seconds=7.0)  # longer than the clip

    with av.open(str(y4m)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(stream)]
    assert (stream.codec_context.width, stream.codec_context.height) == (320, 180)
    assert stream.average_rate == 20
    assert len(frames) == 140
    assert float(np.std(frames[70])) > 20.0  # real pictures, also after looping
    with av.open(str(wav)) as container:
        audio = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio))
    assert audio.sample_rate == 48_000 and audio.codec_context.name == "pcm_s16le"
    assert samples / 48_000 == pytest.approx(7.0, abs=0.05)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_clip_tracks_play_in_real_time_with_continuous_timestamps() -> None:
    video, audio = looping_clip_tracks(width=640, height=360)
    started = asyncio.get_running_loop().time()
    pts = [(await video.recv()).pts for _ in range(13)]
    elapsed = asyncio.get_running_loop().time() - started
    sound = [await audio.recv() for _ in range(5)]
    video.stop()
    audio.stop()
    assert pts == [index * 3600 for index in range(13)]  # 25 fps on a 90 kHz clock
    assert elapsed == pytest.approx(12 / 25, abs=0.1)
    assert [frame.pts for frame in sound] == [index * 960 for index in range(5)]
    assert all(frame.sample_rate == 48_000 and frame.samples == 960 for frame in sound)
