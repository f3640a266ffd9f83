"""``manage.py demo``'s setup: the demo login sees the demo project, however often it runs."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from apps.dashboard.demo import DEMO_PROJECT, DEMO_USER, demo_setup
from apps.projects.selectors import projects_visible_to

pytestmark = pytest.mark.django_db


def test_demo_setup_makes_the_demo_user_a_member_of_the_demo_project():
    project, secret = demo_setup()
    again, second = demo_setup()
    assert again == project
    assert secret != second  # a fresh writer key each time
    user = get_user_model().objects.get(username=DEMO_USER)
    assert list(project.members.all()) == [user]
    # a member even when no longer a superuser
    user.is_superuser = user.is_staff = False
    user.save()
    assert list(projects_visible_to(user).values_list("name", flat=True)) == [DEMO_PROJECT]
