from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import portal

urlpatterns = [
    path("", portal.home_page, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("lessons/", include("live.urls")),
    path("library/", include("courseware.urls")),
    path("admin/", admin.site.urls),
    path("healthz", portal.healthz, name="healthz"),
]
