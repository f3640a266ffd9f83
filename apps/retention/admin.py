"""Retention in the admin: task policies, and the project admin (members, storage used, what
expires when) with the actions "extend retention", "expire now" and "purge now", each behind a
confirmation page that shows what it will do."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import BigIntegerField, Count, F, Min, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.projects.models import Project
from apps.projects.services import members_removed
from apps.retention.models import TaskRetentionPolicy
from apps.retention.policies import policy_apply, retention_expire_now, retention_extend
from apps.retention.services import purge_expired, purge_preview
from apps.runs.models import Run
from apps.streams.models import Stream
from streamdash.core.runstatus import RunStatus

_FAR_AHEAD = dt.timedelta(days=36500)


@admin.register(TaskRetentionPolicy)
class TaskRetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ("project", "task_id", "retention_days", "updated_at")
    list_filter = ("project",)
    search_fields = ("task_id",)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        changed = policy_apply(project=obj.project, task_id=obj.task_id)
        self.message_user(request, f"Expiry re-computed for {changed} finished runs.")


class _DaysForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=3650, initial=28)


def _confirm(
    request: HttpRequest,
    queryset: QuerySet[Project],
    *,
    action: str,
    title: str,
    effect: str,
    preview_expire_all: bool,
    form: forms.Form | None = None,
) -> TemplateResponse:
    projects = list(queryset)
    rows = []
    for project in projects:
        if preview_expire_all:
            # "Expire now" makes every finished run due: preview as if now were far ahead.
            report = purge_preview(projects=[project], now=timezone.now() + _FAR_AHEAD)
        else:
            report = purge_preview(projects=[project])
        rows.append((project, report))
    context = {
        **admin.site.each_context(request),
        "title": title,
        "effect": effect,
        "action": action,
        "rows": rows,
        "form": form,
        "queryset": projects,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": Project._meta,
    }
    return TemplateResponse(request, "admin/retention/confirm_action.html", context)


@admin.action(description="Extend retention of selected projects' runs…")
def extend_retention(
    modeladmin: admin.ModelAdmin[Project], request: HttpRequest, queryset: QuerySet[Project]
) -> HttpResponse | None:
    form = _DaysForm(request.POST if "confirm" in request.POST else None)
    if "confirm" in request.POST and form.is_valid():
        changed = retention_extend(projects=list(queryset), days=form.cleaned_data["days"])
        modeladmin.message_user(request, f"Extended retention of {changed} runs.")
        return None
    return _confirm(
        request,
        queryset,
        action="extend_retention",
        title="Extend retention",
        effect="Finished runs of these projects will be kept this many days longer. "
        "Chunks below would otherwise be purged at the next purge.",
        preview_expire_all=False,
        form=form,
    )


@admin.action(description="Expire now (purge at the next purge)…")
def expire_now(
    modeladmin: admin.ModelAdmin[Project], request: HttpRequest, queryset: QuerySet[Project]
) -> HttpResponse | None:
    if "confirm" in request.POST:
        changed = retention_expire_now(projects=list(queryset))
        modeladmin.message_user(request, f"{changed} runs expire now.", messages.WARNING)
        return None
    return _confirm(
        request,
        queryset,
        action="expire_now",
        title="Expire now",
        effect="Every finished run of these projects becomes due now; the next purge deletes "
        "their chunks:",
        preview_expire_all=True,
    )


@admin.action(description="Purge expired data now…")
def purge_now(
    modeladmin: admin.ModelAdmin[Project], request: HttpRequest, queryset: QuerySet[Project]
) -> HttpResponse | None:
    if "confirm" in request.POST:
        report = purge_expired(projects=list(queryset))
        modeladmin.message_user(request, f"Purge: {report.summary()}")
        return None
    return _confirm(
        request,
        queryset,
        action="purge_now",
        title="Purge now",
        effect="These expired chunks will be deleted now, for good:",
        preview_expire_all=False,
    )


def _stream_total(expression: Any) -> Coalesce:
    totals = (
        Stream.objects.filter(project=OuterRef("pk"))
        .order_by()
        .values("project")
        .annotate(total=Sum(expression))
        .values("total")
    )
    return Coalesce(Subquery(totals, output_field=BigIntegerField()), 0)


class TaskPolicyInline(admin.TabularInline):
    model = TaskRetentionPolicy
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "retention_days",
        "run_count",
        "chunk_count",
        "bytes_used",
        "next_expiry",
        "created_at",
    )
    search_fields = ("name",)
    # Members see the project in the dashboard; staff see every project without being members.
    filter_horizontal = ("members",)
    inlines = [TaskPolicyInline]
    actions = [extend_retention, expire_now, purge_now]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        runs = Run.objects.filter(project=OuterRef("pk")).order_by().values("project")
        due = runs.exclude(status=RunStatus.EXPIRED).filter(expires_at__isnull=False)
        projects: QuerySet[Project] = super().get_queryset(request)
        return projects.annotate(
            _runs=Coalesce(
                Subquery(runs.annotate(n=Count("pk")).values("n"), BigIntegerField()), 0
            ),
            _chunks=_stream_total(F("next_index") - F("first_index")),
            _bytes=_stream_total(F("byte_size")),
            _next_expiry=Subquery(due.annotate(t=Min("expires_at")).values("t")),
        )

    @admin.display(description="runs", ordering="_runs")
    def run_count(self, obj: Any) -> int:
        return int(obj._runs)

    @admin.display(description="chunks", ordering="_chunks")
    def chunk_count(self, obj: Any) -> int:
        return int(obj._chunks)

    @admin.display(description="bytes used", ordering="_bytes")
    def bytes_used(self, obj: Any) -> int:
        return int(obj._bytes)

    @admin.display(description="next expiry", ordering="_next_expiry")
    def next_expiry(self, obj: Any) -> Any:
        return obj._next_expiry

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        project = form.instance
        before = set(project.members.values_list("pk", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        removed = before - set(project.members.values_list("pk", flat=True))
        if removed:
            members_removed(project=project, user_ids=sorted(removed))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "retention_days" in form.changed_data:
            changed = policy_apply(project=obj)
            self.message_user(request, f"Expiry re-computed for {changed} finished runs.")
