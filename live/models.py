"""Lessons, their audience, attendance, media workers and recording pieces."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from outreach.models import Classroom, Grade, Subject


class Lesson(models.Model):
    class State(models.TextChoices):
        SCHEDULED = "scheduled", _("未开始")
        LIVE = "live", _("直播中")
        ENDED = "ended", _("已结束")

    class RecordingState(models.TextChoices):
        NONE = "none", _("无录像")
        PENDING = "pending", _("处理中")
        READY = "ready", _("已入库")
        FAILED = "failed", _("处理失败")

    title = models.CharField(_("标题"), max_length=200)
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="+")
    grade = models.ForeignKey(Grade, on_delete=models.PROTECT, related_name="+")
    teacher = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="lessons_taught")
    scheduled_at = models.DateTimeField(_("计划时间"))
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.SCHEDULED)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, blank=True)
    audience_classrooms = models.ManyToManyField(Classroom, blank=True, related_name="lessons")
    audience_teachers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="lessons_attended")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    # The media worker the lesson is pinned to (MediaWorker.worker_id), empty until it first goes live.
    media_worker_id = models.CharField(max_length=64, blank=True)
    # When the teacher's stream went away without the lesson being ended (cleared when they publish again);
    # a durable job ends the lesson once this is older than the grace period.
    publisher_lost_at = models.DateTimeField(null=True, blank=True)
    # Set by the media worker once it has closed the lesson's media and handed over the last piece.
    media_closed_at = models.DateTimeField(null=True, blank=True)
    recording_state = models.CharField(max_length=10, choices=RecordingState.choices, default=RecordingState.NONE)
    # The courseware item id of the finished recording (live never touches courseware's tables).
    recording_item_id = models.PositiveBigIntegerField(null=True, blank=True)
    recording_notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-scheduled_at", "-id"]
        verbose_name = _("直播课")
        verbose_name_plural = _("直播课")

    def __str__(self) -> str:
        return self.title

    @property
    def group_name(self) -> str:
        return f"lesson-{self.pk}"


class Attendance(models.Model):
    """One participant connection: a user with two devices has two rows; selectors merge them per user."""

    class Role(models.TextChoices):
        PUBLISHER = "publisher", _("主讲")
        VIEWER = "viewer", _("观看")

    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="attendance")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    connection_id = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=10, choices=Role.choices)
    joined_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["joined_at"]
        indexes = [models.Index(fields=["lesson", "left_at"])]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.lesson_id} {self.role} {self.joined_at:%H:%M:%S}"


class MediaWorker(models.Model):
    """A live media process; heartbeats keep it eligible for new lessons."""

    worker_id = models.CharField(max_length=64, unique=True)
    channel_name = models.CharField(max_length=200)
    hostname = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()
    lessons = models.PositiveIntegerField(default=0)
    peers = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.worker_id} ({self.hostname})"


class RecordingPiece(models.Model):
    """A closed piece of a lesson's recording, already in storage."""

    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="pieces")
    storage_name = models.CharField(max_length=300, unique=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    frames = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["started_at"]

    def __str__(self) -> str:
        return self.storage_name
