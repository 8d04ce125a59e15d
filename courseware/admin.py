from django.contrib import admin

from .models import RecordedClass


@admin.register(RecordedClass)
class RecordedClassAdmin(admin.ModelAdmin):
    list_display = ["title", "subject", "grade", "duration_s", "frame_count", "created_at"]
    readonly_fields = ["size_bytes", "duration_s", "frame_count", "width", "height", "has_audio"]
