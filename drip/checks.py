"""The DRIP bridge's system check (`manage.py check`, and `check --deploy`): a malformed
`PM_ENCRYPTION_KEY` is an error at start-up, not a surprise when a moderator links a realm or
the worker decrypts a key. The key itself never appears in the message."""

from typing import Any

from django.core.checks import Error, register

from . import crypto


@register()
def check_encryption_key(app_configs: Any, **kwargs: Any) -> list[Error]:
    problem = crypto.key_problem()
    if problem is None:
        return []
    return [Error(problem, id="drip.E001")]
