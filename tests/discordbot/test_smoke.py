import pytest

from .harness import DEFERRED

pytestmark = pytest.mark.django_db(transaction=True)


async def test_balance(harness, members):
    ex = await harness.send(harness.command("balance", members.alice))
    assert ex.response_type == DEFERRED, ex.requests
    assert "1,000 points" in ex.text, ex.requests
