from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from outreach.models import Classroom, Grade, Profile, Subject


class LessonScheduleForm(forms.Form):
    title = forms.CharField(label=_("课程标题"), max_length=200)
    subject = forms.ModelChoiceField(label=_("学科"), queryset=Subject.objects.all())
    grade = forms.ModelChoiceField(label=_("年级"), queryset=Grade.objects.all())
    scheduled_at = forms.DateTimeField(
        label=_("上课时间"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    teacher = forms.ModelChoiceField(label=_("授课教师"), queryset=get_user_model().objects.none(), required=False)
    classrooms = forms.ModelMultipleChoiceField(
        label=_("听课教室"),
        queryset=Classroom.objects.select_related("school").all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    teachers = forms.ModelMultipleChoiceField(
        label=_("听课教师（培训）"),
        queryset=get_user_model().objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, is_coordinator: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        teachers = get_user_model().objects.filter(profile__role=Profile.Role.TEACHER).select_related("profile")
        self.fields["teachers"].queryset = teachers  # type: ignore[attr-defined]  # a ModelMultipleChoiceField
        self.fields["teachers"].label_from_instance = lambda u: u.profile.display_name  # type: ignore[attr-defined]
        if is_coordinator:
            self.fields["teacher"].queryset = teachers  # type: ignore[attr-defined]  # a ModelChoiceField
            self.fields["teacher"].required = True
            self.fields["teacher"].label_from_instance = lambda u: u.profile.display_name  # type: ignore[attr-defined]
        else:
            del self.fields["teacher"]
