"""API keys in the admin: shown once, revocable at once. The project admin, which shows storage
and retention, lives in ``apps.retention.admin`` (the app that owns those). Django's user admin,
which also ends the dashboard sockets that a user's lost staff status or deactivation no longer
allows."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.projects.models import ApiKey
from apps.projects.services import api_key_create, api_key_revoke, user_status_lowered

User = get_user_model()


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
    modeladmin: admin.ModelAdmin[ApiKey], request: HttpRequest, queryset: QuerySet[ApiKey]
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

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[ApiKey]]:
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


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        lowered = ("is_staff", "is_superuser", "is_active")
        if change and any(f in form.changed_data and not getattr(obj, f) for f in lowered):
            user_status_lowered(user_id=obj.pk)
