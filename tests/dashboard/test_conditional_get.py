"""ETag / If-None-Match on the dashboard and the cockpit; Deprecation and Sunset headers."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from fastapi import Depends, FastAPI

from app.core.http_cache import deprecated_route

DASHBOARD = "/api/v1/mentor/dashboard"


async def _flag(client, factory, mentor, mentee) -> None:
    response = await client.post("/api/v1/mentor/flags", headers=factory.headers(mentor), json={
        "mentee_id": str(mentee.id), "severity": "high", "category": "engagement"})
    assert response.status_code == 201, response.text


async def test_unchanged_dashboard_is_304_and_a_change_is_a_new_tag(client, factory):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    headers = factory.headers(mentor)
    first = await client.get(DASHBOARD, headers=headers)
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert tag.startswith('W/"') and first.headers["cache-control"] == "private, no-cache"

    again = await client.get(DASHBOARD, headers=headers | {"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    # generated_at differs between the two bodies; the tag does not
    assert (await client.get(DASHBOARD, headers=headers)).headers["etag"] == tag

    await _flag(client, factory, mentor, mentee)  # the mentee is now at risk
    changed = await client.get(DASHBOARD, headers=headers | {"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert changed.json()["at_risk_mentees"][0]["mentee_id"] == str(mentee.id)
    stale_list = await client.get(DASHBOARD, headers=headers | {
        "If-None-Match": f'"other", {changed.headers["etag"]}'})
    assert stale_list.status_code == 304


async def test_cockpit_is_conditional_too_and_tags_are_per_mentor(client, factory):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    url = f"/api/v1/mentor/mentees/{mentee.id}/cockpit"
    first = await client.get(url, headers=factory.headers(mentor))
    assert first.status_code == 200
    tag = first.headers["etag"]
    again = await client.get(url, headers=factory.headers(mentor) | {"If-None-Match": tag})
    assert again.status_code == 304
    other, _ = await factory.mentor_with_mentees(1)  # not theirs: 404 whatever the tag
    assert (await client.get(url, headers=factory.headers(other) | {
        "If-None-Match": tag})).status_code == 404


async def test_a_deprecated_route_says_when_it_goes_and_what_replaces_it():
    app = FastAPI()
    sunset = datetime(2027, 6, 30, tzinfo=UTC)

    @app.get("/old", deprecated=True, dependencies=[Depends(deprecated_route(
        sunset=sunset, successor="/api/v2/new", since=datetime(2026, 12, 1, tzinfo=UTC)))])
    async def old() -> dict:
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        response = await http.get("/old")
    assert response.headers["deprecation"] == "@1796083200"
    assert response.headers["sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert response.headers["link"] == '</api/v2/new>; rel="successor-version"'
    assert app.openapi()["paths"]["/old"]["get"]["deprecated"] is True
