from django.contrib import admin

from .models import Attendance, Lesson, MediaWorker, RecordingPiece


@admin.register(Lesson)
class LessonAdmin(admin.ModelAdmin):
    list_display = ["title", "teacher", "scheduled_at", "state", "recording_state"]
    list_filter = ["state", "subject"]
    readonly_fields = ["started_at", "ended_at", "media_worker_id", "media_closed_at", "recording_item_id"]


@admin.register(Attendance)
class AttendanceAdmin(admin.ModelAdmin):
    list_display = ["lesson", "user", "role", "joined_at", "left_at"]


admin.site.register(MediaWorker)
admin.site.register(RecordingPiece)
