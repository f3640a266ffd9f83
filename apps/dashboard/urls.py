from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from apps.dashboard import system_views, views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path(
        "accounts/logout/",
        auth_views.LogoutView.as_view(next_page="dashboard:login"),
        name="logout",
    ),
    path("runs/", views.runs, name="runs"),
    path("runs/<str:run_id>/", views.run_detail, name="run"),
    path("runs/<str:run_id>/streams/<str:key>/", views.run_stream, name="run-stream"),
    path("system/", system_views.system, name="system"),
    path("streams/", views.streams, name="streams"),
    path("definitions/", views.definitions, name="definitions"),
    path("streams/<int:stream_id>/", views.stream_live, name="stream-live"),
    path("streams/<int:stream_id>/history/", views.stream_history, name="stream-history"),
    path("streams/<int:stream_id>/chart/", views.stream_chart, name="stream-chart"),
    path("streams/<int:stream_id>/chunks/<int:index>/", views.chunk_detail, name="chunk"),
    path("streams/<int:stream_id>/chunks/<int:index>/raw", views.chunk_raw, name="chunk-raw"),
    path(
        "streams/<int:stream_id>/export.<str:fmt>",
        views.stream_export,
        name="stream-export",
    ),
]
