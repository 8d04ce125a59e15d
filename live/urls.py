from django.urls import path

from . import views

app_name = "live"

urlpatterns = [
    path("new/", views.schedule_page, name="schedule"),
    path("<int:lesson_id>/broadcast/", views.broadcast_page, name="broadcast"),
    path("<int:lesson_id>/watch/", views.watch_page, name="watch"),
    path("<int:lesson_id>/end/", views.end_lesson, name="end"),
]
