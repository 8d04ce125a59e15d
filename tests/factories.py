"""Small typed factories for the foundation, library and live records.

Each returns a saved row with sensible defaults; pass only what a test cares about. Rows are written with
the ORM directly (not through services) so that tests of a service can start from any state.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone

from live.finalise import piece_storage_name
from live.models import Attendance, Lesson
from live.services import media_worker_heartbeat, recording_piece_add
from outreach.models import Classroom, District, Grade, Profile, School, Subject
from tests.support.media import decode_clip

_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def district(*, side: str = District.Side.SUPPORTED, code: str | None = None) -> District:
    number = _n()
    return District.objects.create(
        code=code or f"district-{number}", name=f"区县{number}", name_en=f"District {number}", side=side
    )


def school(*, district_: District | None = None, side: str = District.Side.SUPPORTED) -> School:
    number = _n()
    return School.objects.create(
        district=district_ or district(side=side), code=f"school-{number}", name=f"学校{number}"
    )


def classroom(*, school_: School | None = None, name: str | None = None) -> Classroom:
    return Classroom.objects.create(school=school_ or school(), name=name or f"{_n()}班")


def subject() -> Subject:
    number = _n()
    return Subject.objects.create(code=f"subject-{number}", name=f"学科{number}", name_en=f"Subject {number}")


def grade() -> Grade:
    number = _n()
    return Grade.objects.create(code=f"grade-{number}", name=f"年级{number}", name_en=f"Grade {number}")


def user(*, username: str | None = None, password: str = "pw", **extra: Any) -> AbstractBaseUser:
    """A bare account without a profile (it has no role on the platform)."""
    return get_user_model().objects.create_user(username=username or f"user{_n()}", password=password, **extra)


def _with_profile(
    account: AbstractBaseUser,
    *,
    role: str,
    display_name: str,
    school_: School | None = None,
    classroom_: Classroom | None = None,
) -> AbstractBaseUser:
    Profile.objects.create(user=account, display_name=display_name, role=role, school=school_, classroom=classroom_)
    return account


def teacher(*, display_name: str | None = None, school_: School | None = None) -> AbstractBaseUser:
    number = _n()
    return _with_profile(
        user(username=f"teacher{number}"),
        role=Profile.Role.TEACHER,
        display_name=display_name or f"教师{number}",
        school_=school_ or school(side=District.Side.SUPPORTING),
    )


def classroom_account(*, classroom_: Classroom | None = None, display_name: str | None = None) -> AbstractBaseUser:
    room = classroom_ or classroom()
    number = _n()
    return _with_profile(
        user(username=f"classroom{number}"),
        role=Profile.Role.CLASSROOM,
        display_name=display_name or f"教室账号{number}",
        school_=room.school,
        classroom_=room,
    )


def coordinator(*, display_name: str | None = None, staff: bool = False) -> AbstractBaseUser:
    number = _n()
    return _with_profile(
        user(username=f"coordinator{number}", is_staff=staff, is_superuser=staff),
        role=Profile.Role.COORDINATOR,
        display_name=display_name or f"协调员{number}",
    )


def lesson(
    *,
    teacher_: AbstractBaseUser | None = None,
    classrooms: Iterable[Classroom] = (),
    teachers: Iterable[AbstractBaseUser] = (),
    title: str = "分数的初步认识",
    state: str = Lesson.State.SCHEDULED,
    **fields: Any,
) -> Lesson:
    row = Lesson.objects.create(
        title=title,
        subject=fields.pop("subject", None) or subject(),
        grade=fields.pop("grade", None) or grade(),
        teacher=teacher_ or teacher(),
        scheduled_at=fields.pop("scheduled_at", None) or timezone.now() + dt.timedelta(hours=1),
        state=state,
        **fields,
    )
    row.audience_classrooms.set(list(classrooms))
    row.audience_teachers.set(list(teachers))
    return row


def media_worker(*, worker_id: str | None = None, channel_name: str | None = None) -> str:
    """A live media worker (a fresh heartbeat row); returns its worker id."""
    worker_id = worker_id or f"worker-{_n()}"
    media_worker_heartbeat(
        worker_id=worker_id, channel_name=channel_name or f"media-worker.{worker_id}", lessons=0, peers=0
    )
    return worker_id


def attendance(
    *,
    lesson_: Lesson,
    user_: AbstractBaseUser,
    joined_at: dt.datetime,
    left_at: dt.datetime | None,
    role: str = Attendance.Role.VIEWER,
) -> Attendance:
    return Attendance.objects.create(
        lesson=lesson_,
        user=user_,
        connection_id=f"conn-{_n()}",
        role=role,
        joined_at=joined_at,
        left_at=left_at,
    )


# --- recording pieces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrittenPiece:
    path: Path
    started_at: dt.datetime
    ended_at: dt.datetime
    frames: int


def webm_pieces(
    directory: Path,
    *,
    started_at: dt.datetime,
    count: int = 2,
    seconds: float = 3.0,
    fps: int = 25,
    width: int = 320,
    height: int = 180,
    gaps: Iterable[float] = (),
) -> list[WrittenPiece]:
    """Write recording pieces as the media worker does: WebM, VP8 + Opus, each starting on a keyframe.

    The pictures and sound are the real sample clip (``tests.support.media``), played on from piece to
    piece. ``gaps``: seconds of wall-clock pause before pieces 2, 3, … (a teacher reload).
    """
    clip = decode_clip(width=width, height=height)
    directory.mkdir(parents=True, exist_ok=True)
    pauses = [0.0, *gaps]
    frames_per_piece = round(seconds * fps)
    audio_chunks_per_piece = round(seconds * 48_000 / 960)
    written: list[WrittenPiece] = []
    wall = started_at
    for number in range(count):
        wall += dt.timedelta(seconds=pauses[number] if number < len(pauses) else 0.0)
        path = directory / f"piece-{number:05d}.webm"
        with av.open(str(path), mode="w", format="webm") as out:
            out.metadata["JINSHI_STARTED_AT"] = repr(wall.timestamp())
            video = out.add_stream("libvpx", rate=fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.bit_rate = 300_000
            video.options = {"deadline": "realtime", "cpu-used": "8"}
            audio = out.add_stream("libopus", rate=48_000, layout="stereo")
            for index in range(frames_per_piece):
                source = clip.pictures[(number * frames_per_piece + index) % len(clip.pictures)]
                frame = VideoFrame.from_ndarray(source, format="yuv420p")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
            for index in range(audio_chunks_per_piece):
                chunk = clip.audio_chunks[(number * audio_chunks_per_piece + index) % len(clip.audio_chunks)]
                sound = AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
                sound.sample_rate = 48_000
                sound.pts = index * 960
                sound.time_base = Fraction(1, 48_000)
                out.mux(audio.encode(sound))
            out.mux(audio.encode(None))
        ended = wall + dt.timedelta(seconds=frames_per_piece / fps)
        written.append(WrittenPiece(path=path, started_at=wall, ended_at=ended, frames=frames_per_piece))
        wall = ended
    return written


def recording_pieces(*, lesson_: Lesson, pieces: Iterable[WrittenPiece], worker_id: str = "abcdef0123") -> list[str]:
    """Hand written pieces to storage and record them, as the media worker does; returns storage names."""
    names = []
    for index, piece in enumerate(pieces):
        name = piece_storage_name(lesson_id=lesson_.pk, worker_id=worker_id, index=index, started_at=piece.started_at)
        with piece.path.open("rb") as handle:
            stored = default_storage.save(name, File(handle))
        recording_piece_add(
            lesson_id=lesson_.pk,
            storage_name=stored,
            started_at=piece.started_at,
            ended_at=piece.ended_at,
            frames=piece.frames,
        )
        names.append(stored)
    return names
