"""Foundation records: districts, schools, classrooms, partnerships, reference data, people, audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class District(models.Model):
    class Side(models.TextChoices):
        SUPPORTING = "supporting", _("支援方")
        SUPPORTED = "supported", _("受援方")

    code = models.SlugField(_("代码"), unique=True)
    name = models.CharField(_("名称"), max_length=100)
    name_en = models.CharField(_("英文名称"), max_length=100, blank=True)
    side = models.CharField(_("角色"), max_length=12, choices=Side.choices)

    class Meta:
        ordering = ["code"]
        verbose_name = _("区县")
        verbose_name_plural = _("区县")

    def __str__(self) -> str:
        return self.name


class School(models.Model):
    district = models.ForeignKey(District, on_delete=models.PROTECT, related_name="schools")
    code = models.SlugField(_("代码"), unique=True)
    name = models.CharField(_("名称"), max_length=150)
    name_en = models.CharField(_("英文名称"), max_length=150, blank=True)

    class Meta:
        ordering = ["district__code", "code"]
        verbose_name = _("学校")
        verbose_name_plural = _("学校")

    def __str__(self) -> str:
        return self.name


class Classroom(models.Model):
    """A physical classroom with a projector; it joins lessons through a classroom account."""

    school = models.ForeignKey(School, on_delete=models.PROTECT, related_name="classrooms")
    name = models.CharField(_("名称"), max_length=100)

    class Meta:
        ordering = ["school__code", "name"]
        constraints = [models.UniqueConstraint(fields=["school", "name"], name="classroom_unique_name")]
        verbose_name = _("教室")
        verbose_name_plural = _("教室")

    def __str__(self) -> str:
        return f"{self.school.name} · {self.name}"


class SchoolPartnership(models.Model):
    """Which supporting (Jinniu) school supports which supported (Shiqu) school."""

    supporting = models.ForeignKey(School, on_delete=models.PROTECT, related_name="partnerships_given")
    supported = models.ForeignKey(School, on_delete=models.PROTECT, related_name="partnerships_received")
    since = models.DateField(_("开始日期"))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["supporting", "supported"], name="partnership_unique_pair")]
        verbose_name = _("结对学校")
        verbose_name_plural = _("结对学校")

    def __str__(self) -> str:
        return f"{self.supporting} → {self.supported}"


class Subject(models.Model):
    code = models.SlugField(unique=True)
    name = models.CharField(_("名称"), max_length=50)
    name_en = models.CharField(_("英文名称"), max_length=50)

    class Meta:
        ordering = ["code"]
        verbose_name = _("学科")
        verbose_name_plural = _("学科")

    def __str__(self) -> str:
        return self.name


class Grade(models.Model):
    code = models.SlugField(unique=True)
    name = models.CharField(_("名称"), max_length=50)
    name_en = models.CharField(_("英文名称"), max_length=50)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order"]
        verbose_name = _("年级")
        verbose_name_plural = _("年级")

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    class Role(models.TextChoices):
        TEACHER = "teacher", _("教师")
        CLASSROOM = "classroom", _("教室账号")
        COORDINATOR = "coordinator", _("协调员")

    class Language(models.TextChoices):
        ZH = "zh", _("汉语")
        BO = "bo", _("藏语")
        EN = "en", _("英语")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(_("显示名称"), max_length=100)
    role = models.CharField(_("角色"), max_length=12, choices=Role.choices)
    school = models.ForeignKey(School, on_delete=models.PROTECT, null=True, blank=True, related_name="people")
    classroom = models.ForeignKey(Classroom, on_delete=models.PROTECT, null=True, blank=True, related_name="accounts")
    subjects = models.ManyToManyField(Subject, blank=True, related_name="teachers")
    languages = models.JSONField(_("语言"), default=list, blank=True)

    class Meta:
        verbose_name = _("用户资料")
        verbose_name_plural = _("用户资料")

    def __str__(self) -> str:
        return self.display_name

    @property
    def side(self) -> str | None:
        return self.school.district.side if self.school else None


class AuditEvent(models.Model):
    """Who did what to which record, when and from where. Written by services for sensitive actions."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(_("操作"), max_length=64, db_index=True)
    target_type = models.CharField(_("对象类型"), max_length=64)
    target_id = models.CharField(_("对象"), max_length=64)
    at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)
    ip = models.GenericIPAddressField(_("IP"), null=True, blank=True)
    extra = models.JSONField(_("详情"), default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("审计记录")
        verbose_name_plural = _("审计记录")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.target_type}:{self.target_id}"
