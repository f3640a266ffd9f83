from __future__ import annotations

from django.urls import path

from apps.embed import views

app_name = "embed"

urlpatterns = [
    path("examples/", views.examples, name="examples"),
]
