"""Issue 27 item 5: a NUL (or another character PostgreSQL cannot compare) in any admin
changelist's filter or search is refused with 400, never a 500 — every registered model admin,
the DRIP ones included, each filter and the search parameter in turn."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch, reverse

from drip.admin import DripLinkAdmin, DripTransferAdmin

pytestmark = [pytest.mark.django_db]


def _parameters(model_admin: admin.ModelAdmin) -> list[str]:
    names = ["q", "o", "p"]
    for spec in model_admin.list_filter or ():
        field = spec[0] if isinstance(spec, tuple) else spec
        if isinstance(field, str):
            names += [field, f"{field}__exact", f"{field}__in"]
        else:  # a SimpleListFilter class
            names.append(getattr(field, "parameter_name", "") or "filter")
    for name in (model_admin.date_hierarchy and [model_admin.date_hierarchy]) or []:
        names.append(f"{name}__year")
    return [n for n in dict.fromkeys(names) if n]


def test_every_admin_changelist_refuses_nul_in_each_filter_and_search(client, plain_http):
    user = get_user_model().objects.create_superuser("root", password="x" * 20)
    client.force_login(user)
    walked = 0
    for model, model_admin in admin.site._registry.items():
        try:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        except NoReverseMatch:
            continue
        for name in _parameters(model_admin):
            response = client.get(url, {name: "\x00"})
            assert response.status_code == 400, (model.__name__, name, response.status_code)
            walked += 1
        response = client.get(url + "?status=%00")
        assert response.status_code == 400, model.__name__
    assert walked >= 3 * len(admin.site._registry)


def test_the_drip_admins_use_the_text_safe_changelist(client, plain_http):
    user = get_user_model().objects.create_superuser("root2", password="x" * 20)
    client.force_login(user)
    for path in ("/admin/drip/driptransfer/?status=%00", "/admin/drip/driplink/?q=%00"):
        response = client.get(path)
        assert response.status_code == 400
        assert "character" in response.content.decode()
    from drip.models import DripLink, DripTransfer

    assert isinstance(admin.site._registry[DripTransfer], DripTransferAdmin)
    assert isinstance(admin.site._registry[DripLink], DripLinkAdmin)
