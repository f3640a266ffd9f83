"""Projects and API keys in the admin: storage used, what expires when, keys shown once."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import BigIntegerField, Count, F, Min, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from apps.projects.models import ApiKey, Project
from apps.projects.services import api_key_create, api_key_revoke
from apps.retention.admin import expire_now, extend_retention, purge_now
from apps.retention.models import TaskRetentionPolicy
from apps.retention.policies import policy_apply
from apps.runs.models import Run, RunStatus
from apps.streams.models import Stream


def _stream_total(expression: Any) -> Subquery:
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
    inlines = [TaskPolicyInline]
    actions = [extend_retention, expire_now, purge_now]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        runs = Run.objects.filter(project=OuterRef("pk")).order_by().values("project")
        due = runs.exclude(status=RunStatus.EXPIRED).filter(expires_at__isnull=False)
        return (
            super()
            .get_queryset(request)
            .annotate(
                _runs=Coalesce(
                    Subquery(runs.annotate(n=Count("pk")).values("n"), BigIntegerField()), 0
                ),
                _chunks=_stream_total(F("next_index") - F("first_index")),
                _bytes=_stream_total(F("byte_size")),
                _next_expiry=Subquery(due.annotate(t=Min("expires_at")).values("t")),
            )
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

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "retention_days" in form.changed_data:
            changed = policy_apply(project=obj)
            self.message_user(request, f"Expiry re-computed for {changed} finished runs.")


class ApiKeyAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in ApiKey.SCOPES],
        widget=forms.CheckboxSelectMultiple,
        initial=list(ApiKey.SCOPES),
    )

    class Meta:
        model = ApiKey
        fields = ("project", "name", "scopes")


@admin.action(description="Revoke selected keys (takes effect at once)")
def revoke_keys(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ApiKey]
) -> None:
    for key in queryset:
        api_key_revoke(key=key)
    modeladmin.message_user(request, f"Revoked {queryset.count()} keys.")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "name",
        "project",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("project", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("prefix", "name", "project__name")
    readonly_fields = ("prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    exclude = ("digest",)
    actions = [revoke_keys]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):  # type: ignore[no-untyped-def]
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("project", "name", "scopes")
        return ("project", "name", *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, secret = api_key_create(
            project=form.cleaned_data["project"],
            name=form.cleaned_data["name"],
            scopes=list(form.cleaned_data["scopes"]),
        )
        obj.pk = key.pk
        # Shown once, here; only its digest is stored.
        self.message_user(
            request, f"New API key (copy it now, it is not shown again): {secret}", messages.WARNING
        )
