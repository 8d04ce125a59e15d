"""Load demo data: two districts, schools, classrooms, partnerships, reference data, demo accounts and one
scheduled lesson. Idempotent: a second run changes nothing.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from outreach.models import Classroom, District, Grade, Profile, School, SchoolPartnership, Subject

DEMO_PASSWORD = "jinshi-demo"  # demo data only; the command refuses to run on production settings

DISTRICTS = [
    ("jinniu", "成都市金牛区", "Jinniu District, Chengdu", District.Side.SUPPORTING),
    ("shiqu", "甘孜州石渠县", "Shiqu County, Garzê", District.Side.SUPPORTED),
]
SCHOOLS = [
    ("jinniu", "jn-shiyan", "金牛区实验小学", "Jinniu Experimental Primary School"),
    ("jinniu", "jn-yizhong", "金牛区第一中学", "Jinniu No. 1 Middle School"),
    ("jinniu", "jn-waiguoyu", "金牛区外国语学校", "Jinniu Foreign Languages School"),
    ("shiqu", "sq-yixiao", "石渠县第一完全小学", "Shiqu No. 1 Primary School"),
    ("shiqu", "sq-zhongxue", "石渠县中学", "Shiqu Middle School"),
    ("shiqu", "sq-luoxu", "石渠县洛须镇小学", "Luoxu Town Primary School"),
]
CLASSROOMS = [
    ("sq-yixiao", "四年级一班"),
    ("sq-yixiao", "四年级二班"),
    ("sq-zhongxue", "七年级二班"),
    ("sq-luoxu", "五年级一班"),
    ("jn-shiyan", "录播教室"),
]
PARTNERSHIPS = [("jn-shiyan", "sq-yixiao"), ("jn-yizhong", "sq-zhongxue"), ("jn-waiguoyu", "sq-luoxu")]
SUBJECTS = [
    ("chinese", "语文", "Chinese"),
    ("math", "数学", "Mathematics"),
    ("english", "英语", "English"),
    ("tibetan", "藏语文", "Tibetan"),
    ("science", "科学", "Science"),
]
GRADES = [(f"g{n}", f"{'一二三四五六七八九'[n - 1]}年级", f"Grade {n}", n) for n in range(1, 10)]

# username, display name, role, school code, classroom name, languages
ACCOUNTS = [
    ("teacher", "王晓梅老师", Profile.Role.TEACHER, "jn-shiyan", None, ["zh"]),
    ("classroom1", "石渠一小 四年级一班", Profile.Role.CLASSROOM, "sq-yixiao", "四年级一班", ["zh", "bo"]),
    (
        "classroom2",
        "石渠县中学 七年级二班",
        Profile.Role.CLASSROOM,
        "sq-zhongxue",
        "七年级二班",
        ["zh", "bo"],
    ),
    ("shiqu_teacher", "བཀྲ་ཤིས་ 扎西老师", Profile.Role.TEACHER, "sq-yixiao", None, ["bo", "zh"]),
    ("coordinator", "刘协调员", Profile.Role.COORDINATOR, None, None, ["zh"]),
]
DEMO_LESSON_TITLE = "分数的初步认识"


class Command(BaseCommand):
    help = "Load demo data and print the demo logins (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        # SETTINGS_MODULE is None while settings are overridden (override_settings, settings.configure()).
        module = settings.SETTINGS_MODULE or os.environ.get("DJANGO_SETTINGS_MODULE", "")
        if module.endswith("production"):
            raise CommandError("demo data is not for production settings")
        with transaction.atomic():
            created = self._load()
        self.stdout.write(self.style.SUCCESS(f"demo data ready ({created} new records)"))
        self.stdout.write("demo logins (username / password):")
        for username, display, role, *_rest in ACCOUNTS:
            self.stdout.write(f"  {username:<14} / {DEMO_PASSWORD}   {role.label}: {display}")

    def _load(self) -> int:
        created = 0

        def count(pair: tuple[Any, bool]) -> Any:
            nonlocal created
            created += int(pair[1])
            return pair[0]

        districts = {
            code: count(District.objects.get_or_create(code=code, defaults={"name": n, "name_en": en, "side": s}))
            for code, n, en, s in DISTRICTS
        }
        schools = {
            code: count(
                School.objects.get_or_create(code=code, defaults={"district": districts[d], "name": n, "name_en": en})
            )
            for d, code, n, en in SCHOOLS
        }
        classrooms = {
            (school, name): count(Classroom.objects.get_or_create(school=schools[school], name=name))
            for school, name in CLASSROOMS
        }
        for supporting, supported in PARTNERSHIPS:
            count(
                SchoolPartnership.objects.get_or_create(
                    supporting=schools[supporting],
                    supported=schools[supported],
                    defaults={"since": dt.date(2025, 9, 1)},
                )
            )
        subjects = {
            code: count(Subject.objects.get_or_create(code=code, defaults={"name": n, "name_en": en}))
            for code, n, en in SUBJECTS
        }
        grades = {
            code: count(Grade.objects.get_or_create(code=code, defaults={"name": n, "name_en": en, "order": o}))
            for code, n, en, o in GRADES
        }
        users = {}
        User = get_user_model()
        for username, display, role, school, classroom, languages in ACCOUNTS:
            user, was_created = User.objects.get_or_create(username=username)
            if was_created:
                user.set_password(DEMO_PASSWORD)
                user.is_staff = role == Profile.Role.COORDINATOR
                user.is_superuser = role == Profile.Role.COORDINATOR
                user.save()
                created += 1
            count(
                Profile.objects.get_or_create(
                    user=user,
                    defaults={
                        "display_name": display,
                        "role": role,
                        "school": schools[school] if school else None,
                        "classroom": classrooms[(school, classroom)] if school and classroom else None,
                        "languages": languages,
                    },
                )
            )
            users[username] = user
        users["teacher"].profile.subjects.add(subjects["math"])
        lesson_model = _lesson_model()
        if not lesson_model.objects.filter(title=DEMO_LESSON_TITLE, teacher=users["teacher"]).exists():
            tomorrow = timezone.localtime() + dt.timedelta(days=1)
            lesson = lesson_model.objects.create(
                title=DEMO_LESSON_TITLE,
                subject=subjects["math"],
                grade=grades["g3"],
                teacher=users["teacher"],
                scheduled_at=tomorrow.replace(hour=10, minute=0, second=0, microsecond=0),
                created_by=users["coordinator"],
            )
            lesson.audience_classrooms.set(
                [classrooms[("sq-yixiao", "四年级一班")], classrooms[("sq-zhongxue", "七年级二班")]]
            )
            lesson.audience_teachers.set([users["shiqu_teacher"]])
            created += 1
        return created


def _lesson_model() -> Any:
    # Demo data spans every app; look the model up by label so the foundation layer imports no higher app.
    from django.apps import apps

    return apps.get_model("live", "Lesson")
