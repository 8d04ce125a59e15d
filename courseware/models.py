"""The library's records. Courseware knows nothing of lessons: live hands it finished files."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from outreach.models import Grade, Subject


class RecordedClass(models.Model):
    """A recorded lesson in the library, playable with seeking."""

    title = models.CharField(_("标题"), max_length=200)
    subject = models.ForeignKey(Subject, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    grade = models.ForeignKey(Grade, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    teacher = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    video = models.FileField(_("视频"), upload_to="recordings/%Y/%m/", max_length=300)
    poster = models.FileField(_("封面"), upload_to="posters/%Y/%m/", max_length=300, blank=True)
    content_type = models.CharField(max_length=50, default="video/webm")
    size_bytes = models.BigIntegerField(default=0)
    duration_s = models.FloatField(_("时长（秒）"), default=0)
    frame_count = models.PositiveIntegerField(default=0)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    has_audio = models.BooleanField(default=False)
    recorded_at = models.DateTimeField(_("录制时间"), null=True, blank=True)
    notes = models.TextField(_("说明"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("录播课")
        verbose_name_plural = _("录播课")

    def __str__(self) -> str:
        return self.title
