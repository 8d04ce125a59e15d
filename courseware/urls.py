from django.urls import path

from . import views

app_name = "courseware"

urlpatterns = [
    path("", views.library_page, name="library"),
    path("<int:item_id>/", views.recorded_class_page, name="recorded_class"),
    path("<int:item_id>/video", views.recorded_class_video, name="video"),
    path("<int:item_id>/poster", views.recorded_class_poster, name="poster"),
]
