"""Fixtures of the webhook tests: an admin's headers and endpoints created through the API."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from tests.support.events_helpers import relay_until_published, rows

ADMIN_URL = "/api/v1/admin/webhooks"


@pytest.fixture
async def admin(factory):
    return await factory.role_headers("admin")


@pytest.fixture
async def endpoints(client, admin, system_db, redis, settings):
    """Creates endpoints through the API; deactivates them after the test, so later tests'
    events make no deliveries to a receiver that is gone. Outbox rows other tests left
    unpublished are relayed first: the test's endpoints get only the test's events."""
    pending = [r.id for r in await rows(system_db, "select id from outbox_events "
                                                   "where published_at is null")]
    await relay_until_published(system_db, redis, settings, pending)
    created: list[str] = []

    async def create(url: str, **fields) -> dict:
        response = await client.post(ADMIN_URL, json={"url": url, **fields}, headers=admin)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
        return response.json()

    yield create
    async with system_db.transaction(None) as session:
        await session.execute(text("update webhook_endpoints set active = false "
                                   "where id = any(:ids)"),
                              {"ids": [uuid.UUID(i) for i in created]})
