"""Which projects a dashboard user may see: the projects they are a member of, or every project
for staff. Every dashboard page, socket, export and counter filters through this one queryset,
so a project a user may not see is as absent for them as one that does not exist."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from apps.projects.models import Project

Viewer = AbstractBaseUser | AnonymousUser


def sees_all_projects(user: Viewer) -> bool:
    """Staff and superusers operate the whole site (they have the admin too)."""
    if not user.is_authenticated or not user.is_active:
        return False
    return bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))


def projects_visible_to(user: Viewer) -> QuerySet[Project]:
    """A lazy queryset, meant to be used as a subquery (``project__in=…``): it costs no query
    of its own, and a membership change applies to the very next read."""
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    if sees_all_projects(user):
        return Project.objects.all()
    return Project.objects.filter(members=user.pk)


def project_visible_to(user: Viewer, project_id: int) -> bool:
    return projects_visible_to(user).filter(pk=project_id).exists()


def viewer_reread(user: Viewer) -> Viewer:
    """The user as stored now (staff status, active): a socket reads its user once, at
    connect. A deleted user is anonymous."""
    if not user.is_authenticated:
        return user
    found = get_user_model()._default_manager.filter(pk=user.pk).first()
    return found if found is not None else AnonymousUser()
