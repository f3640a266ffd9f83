"""Project membership: who sees which project in the dashboard, ``createproject --member``,
and the members field of the project admin."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.management import CommandError, call_command
from django.test import Client

from apps.projects.models import Project
from apps.projects.selectors import projects_visible_to, sees_all_projects
from tests.factories import make_project

pytestmark = pytest.mark.django_db


def _names(user) -> set[str]:
    return set(projects_visible_to(user).values_list("name", flat=True))


def test_projects_visible_to_a_member_are_theirs_only(django_user_model) -> None:
    mine, _ = make_project("mine")
    make_project("theirs")
    user = django_user_model.objects.create_user("member", password="pw-123456789")
    mine.members.add(user)
    assert _names(user) == {"mine"}
    assert not sees_all_projects(user)


def test_projects_visible_to_staff_and_superusers_are_all(django_user_model) -> None:
    make_project("a")
    make_project("b")
    staff = django_user_model.objects.create_user("staff", password="pw-1234567", is_staff=True)
    root = django_user_model.objects.create_superuser("root", "r@example.com", "pw-123456789")
    assert _names(staff) == _names(root) == {"a", "b"}
    assert sees_all_projects(staff)
    assert sees_all_projects(root)


def test_projects_visible_to_nobody_without_membership(django_user_model) -> None:
    project, _ = make_project()
    stranger = django_user_model.objects.create_user("stranger", password="pw-123456789")
    gone = django_user_model.objects.create_user(
        "gone", password="pw-123456789", is_staff=True, is_active=False
    )
    project.members.add(gone)
    assert _names(stranger) == set()
    assert _names(gone) == set()  # a deactivated user sees nothing, staff or member
    assert _names(AnonymousUser()) == set()
    assert not sees_all_projects(AnonymousUser())


def test_createproject_member_sees_the_new_project(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw-123456789")
    bob = django_user_model.objects.create_user("bob", password="pw-123456789")
    out = io.StringIO()
    call_command("createproject", "shared", "--member", "alice", "--member", "bob", stdout=out)
    assert out.getvalue().startswith("sd_sk_")
    assert set(Project.objects.get(name="shared").members.all()) == {alice, bob}


def test_createproject_unknown_member_creates_nothing(django_user_model) -> None:
    django_user_model.objects.create_user("alice", password="pw-123456789")
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("createproject", "p", "--member", "alice", "--member", "nobody")
    assert not Project.objects.filter(name="p").exists()


def test_admin_project_members_are_editable(admin_client: Client, django_user_model) -> None:
    project, _ = make_project()
    user = django_user_model.objects.create_user("joe", password="pw-123456789")
    page = admin_client.get(f"/admin/projects/project/{project.pk}/change/")
    assert page.status_code == 200
    assert 'name="members"' in page.content.decode()
    assert "selectfilter" in page.content.decode()  # filter_horizontal
    data = {"name": project.name, "retention_days": "", "members": [user.pk]}
    response = admin_client.post(
        f"/admin/projects/project/{project.pk}/change/", {**data, **_inline_management(page)}
    )
    assert response.status_code == 302
    assert list(project.members.all()) == [user]


def _inline_management(page) -> dict[str, str]:
    """The task-policy inline's management form, empty."""
    formset = page.context["inline_admin_formsets"][0].formset
    prefix = formset.prefix
    return {
        f"{prefix}-TOTAL_FORMS": "0",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
