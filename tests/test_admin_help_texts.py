"""Every help text a moderator can meet says its rule in words (issue 23 item 13): no "DOMAIN §7",
"docs/domain.md §10" — section numbers of a developers' document mean nothing in the back office.
The model fields' help texts (the admin shows them under each field, read-only ones too), the
fields of every form the apps define, and the admin's fieldset descriptions."""

from __future__ import annotations

import re

from django import forms
from django.apps import apps
from django.contrib import admin

PROJECT_APPS = ("betting", "core", "dashboard", "discordbot", "drip", "markets", "ops", "points")
CITATION = re.compile(r"§|DOMAIN|STYLE|domain\.md|style\.md")


def _ours(module: str) -> bool:
    return module.split(".", 1)[0] in PROJECT_APPS


def _form_classes() -> list[type[forms.BaseForm]]:
    seen: list[type[forms.BaseForm]] = []
    todo: list[type[forms.BaseForm]] = [forms.BaseForm]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return [cls for cls in seen if _ours(cls.__module__)]


def test_model_help_texts_say_their_rule_in_words():
    cited = [
        f"{model._meta.label}.{field.name}: {field.help_text}"
        for config in apps.get_app_configs()
        if config.name in PROJECT_APPS
        for model in config.get_models()
        for field in model._meta.get_fields()
        if CITATION.search(str(getattr(field, "help_text", "")))
    ]
    assert cited == []


def test_form_help_texts_say_their_rule_in_words():
    classes = _form_classes()
    assert any(cls.__name__ == "KnownAtFields" for cls in classes)  # the admin's forms are seen
    cited = [
        f"{cls.__module__}.{cls.__name__}.{name}: {field.help_text}"
        for cls in classes
        for name, field in cls.base_fields.items()
        if CITATION.search(str(field.help_text or ""))
    ]
    assert cited == []


def test_admin_fieldset_descriptions_say_their_rule_in_words():
    cited = [
        f"{model._meta.label} {title}: {options['description']}"
        for model, model_admin in admin.site._registry.items()
        for title, options in (getattr(type(model_admin), "fieldsets", None) or ())
        if CITATION.search(str(options.get("description", "")))
    ]
    assert cited == []
