"""Fixtures for the bot tests: a fake Discord, a bot logged in against it, and the cast."""

from __future__ import annotations

import uuid

import pytest

from .harness import Harness, Members


@pytest.fixture
def members() -> Members:
    return Members()


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    """Each test counts rate limits in its own namespace (the cache may be a shared Redis)."""
    settings.DISCORD_RATELIMIT_NAMESPACE = uuid.uuid4().hex


@pytest.fixture
async def harness():
    """A bot logged in against a fresh fake Discord; cogs loaded, no background loops."""
    h = await Harness.start()
    try:
        yield h
    finally:
        await h.close()
