"""Admin UI hardening (issue 16 F10, F1's admin part; issue 17: admin edits validated as the
API validates them), each checked over HTTP against a real uvicorn.

The module's server trusts 127.0.0.1 as a proxy, so each test picks its own client address
with `X-Forwarded-For` and the per-client lockout of one test never touches another."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from app.models import User
from tests.admin.test_admin import PASSWORD, forged_session_cookie
from tests.support.live import LiveServer, live_server

MAX_FAILURES = 3
MAX_FAILURES_PER_CLIENT = 5
LOCKOUT_SECONDS = 4


@pytest.fixture(scope="module")
def server(settings) -> Iterator[LiveServer]:
    with live_server({
        "ADMIN_UI_PASSWORD": PASSWORD, "TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "ADMIN_LOGIN_MAX_FAILURES": str(MAX_FAILURES),
        "ADMIN_LOGIN_MAX_FAILURES_PER_CLIENT": str(MAX_FAILURES_PER_CLIENT),
        "ADMIN_LOCKOUT_SECONDS": str(LOCKOUT_SECONDS),
    }) as running:
        yield running


def browser(server: LiveServer, client_ip: str | None = None, **headers: str
            ) -> httpx.AsyncClient:
    """A client that behaves like a browser on the admin UI: its own address, and the
    `Origin` header a browser sends with every POST."""
    ip = client_ip or str(ipaddress.IPv4Address(random.randrange(0x0B000000, 0x0BFFFFFF)))
    return httpx.AsyncClient(base_url=server.url, timeout=30, headers={
        "Origin": server.url, "X-Forwarded-For": ip, **headers})


async def login(http: httpx.AsyncClient, email: str,
                password: str = PASSWORD) -> httpx.Response:
    return await http.post("/admin/login", data={"username": email, "password": password})


async def saved_user(system_db, user_id: uuid.UUID) -> User:
    async with system_db.transaction(None) as session:
        return (await session.execute(select(User).where(User.id == user_id))).scalar_one()


class TestCrossOrigin:
    async def test_a_cross_origin_post_changes_nothing(self, server, factory, system_db):
        director = await factory.user("director")
        mentor = await factory.mentor(name="Original Name")
        edit = {"name": "Changed By Attacker", "email": f"m-{mentor.id.hex[:8]}@example.org",
                "tier": "",
                "timezone": "UTC", "mentor_capacity_weekly": "5", "mentor_max_mentees": "5",
                "save": "Save"}
        async with browser(server) as http:
            assert (await login(http, director.email)).status_code == 302
            url = f"/admin/users/edit/{mentor.id}"
            for headers in ({"Origin": "https://evil.example"},
                            {"Origin": "null"},
                            {"Origin": server.url.replace("127.0.0.1", "localhost")},
                            {"Origin": "", "Referer": "https://evil.example/page"}):
                response = await http.post(url, data=edit, headers=headers)
                assert response.status_code == 403, headers
                assert "Cross-origin" in response.text
            # Neither Origin nor Referer: refused too.
            bare = httpx.AsyncClient(base_url=server.url, cookies=http.cookies,
                                headers={"X-Forwarded-For": http.headers["X-Forwarded-For"]})
            async with bare:
                assert (await bare.post(url, data=edit)).status_code == 403
                delete = await bare.delete(f"/admin/users/delete?pks={mentor.id}")
                assert delete.status_code == 403
            assert (await saved_user(system_db, mentor.id)).name == "Original Name"
            # The same edit from the admin UI's own pages (here shown by Referer) goes through.
            ok = await http.post(url, data=edit, headers={"Origin": "",
                                                    "Referer": f"{server.url}{url}"})
            assert ok.status_code == 302, ok.text
        assert (await saved_user(system_db, mentor.id)).name == "Changed By Attacker"

    async def test_a_cross_origin_login_is_refused(self, server, factory):
        director = await factory.user("director")
        async with browser(server, Origin="https://evil.example") as http:
            assert (await login(http, director.email)).status_code == 403
            assert "mentorship_admin" not in http.cookies


class TestSessions:
    async def test_logout_revokes_a_copied_cookie(self, server, factory, redis, settings):
        director = await factory.user("director")
        async with browser(server) as http:
            assert (await login(http, director.email)).status_code == 302
            cookie = http.cookies["mentorship_admin"]
            assert director.email not in cookie  # an opaque id, the data is in Redis
            keys = [k async for k in redis.scan_iter(f"{settings.redis_prefix}admin:session:*")]
            assert keys, "the session lives under REDIS_PREFIX"
            assert (await http.get("/admin/users/list")).status_code == 200
            logout = await http.get("/admin/logout")
            assert logout.status_code == 302 and logout.headers["location"] == "/admin/login"
            assert (await http.get("/admin/users/list")).status_code == 302
        async with browser(server) as thief:
            thief.cookies.set("mentorship_admin", cookie)
            response = await thief.get("/admin/users/list")
            assert response.status_code == 302 and response.headers["location"] == "/admin/login"

    async def test_a_login_gets_a_fresh_session_id(self, server, factory):
        director = await factory.user("director")
        async with browser(server) as http:
            assert (await login(http, director.email)).status_code == 302
            first = http.cookies["mentorship_admin"]
            assert (await login(http, director.email)).status_code == 302
            assert http.cookies["mentorship_admin"] != first
        async with browser(server) as other:  # the first session was replaced, not kept
            other.cookies.set("mentorship_admin", first)
            assert (await other.get("/admin/")).status_code == 302


class TestLockout:
    async def test_an_account_is_locked_then_released(self, server, factory):
        director = await factory.user("director")
        async with browser(server) as http:
            for _ in range(MAX_FAILURES):
                assert (await login(http, director.email, "wrong-password")).status_code == 400
            locked = await login(http, director.email)  # the right password, but locked
            assert locked.status_code == 429
            assert "Too many failed logins" in locked.text and "try again in" in locked.text
        async with browser(server) as elsewhere:  # per account: from anywhere
            assert (await login(elsewhere, director.email.upper())).status_code == 429
            await asyncio.sleep(LOCKOUT_SECONDS + 1)
            assert (await login(elsewhere, director.email)).status_code == 302

    async def test_a_success_clears_the_accounts_count(self, server, factory):
        director = await factory.user("director")
        async with browser(server) as http:
            for _ in range(2):
                for _ in range(MAX_FAILURES - 1):
                    assert (await login(http, director.email, "wrong")).status_code == 400
                assert (await login(http, director.email)).status_code == 302

    async def test_a_client_is_locked_across_accounts(self, server, factory):
        directors = [await factory.user("director") for _ in range(3)]
        ip = "198.51.100.7"
        async with browser(server, ip) as http:
            for n in range(MAX_FAILURES_PER_CLIENT):  # spread: no account reaches its limit
                assert (await login(http, directors[n % 3].email, "wrong")).status_code == 400
            locked = await login(http, directors[0].email)
            assert locked.status_code == 429 and "Too many failed logins" in locked.text
        async with browser(server) as other_client:  # the accounts themselves are not locked
            assert (await login(other_client, directors[1].email)).status_code == 302


class TestHeadersAndHost:
    async def test_security_headers_on_every_admin_response(self, server, factory):
        director = await factory.user("director")
        async with browser(server) as http:
            pages = [await http.get("/admin/login"), await http.get("/admin/users/list"),
                     await http.post("/admin/login", data={"username": "x", "password": "y"})]
            await login(http, director.email)
            pages += [await http.get("/admin/users/list"), await http.get("/admin/nowhere")]
            static = await http.get("/admin/statics/css/main.css")
        assert static.status_code == 200
        for response in (*pages, static):
            headers = response.headers
            assert headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert "script-src 'self';" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "same-origin"
        assert all(page.headers["cache-control"] == "no-store" for page in pages)
        assert "no-store" not in static.headers.get("cache-control", "")

    async def test_a_forged_host_is_never_reflected(self, server, factory):
        director = await factory.user("director")
        evil = "evil.example"
        async with browser(server, Host=evil, Origin=f"http://{evil}") as http:
            bare = await http.get("/admin")
            assert bare.status_code == 307 and bare.headers["location"] == "/admin/"
            anonymous = await http.get("/admin/users/list")
            assert anonymous.status_code == 302
            assert anonymous.headers["location"] == "/admin/login"
            page = await http.get("/admin/login")
            assert evil not in page.text and 'href="/admin/statics/' in page.text
            response = await login(http, director.email)
            assert response.status_code == 302 and response.headers["location"] == "/admin/"
            listing = await http.get("/admin/users/list")
            assert listing.status_code == 200 and evil not in listing.text
            # Nor on the API: no automatic trailing-slash redirect built from the Host.
            for path in ("/api/v1/whoami/", "/healthz/", "/api/v1/mentor/dashboard/"):
                slashed = await http.get(path)
                assert slashed.status_code == 404 and "location" not in slashed.headers
                assert slashed.json()["code"] == "not_found"


async def test_production_without_an_admin_key_disables_the_admin_ui(settings, factory):
    director = await factory.user("director")
    production = LiveServer.start({"ENVIRONMENT": "production", "ADMIN_SECRET_KEY": "",
                                   "ADMIN_UI_PASSWORD": PASSWORD})
    try:
        production.wait_ready(seconds=180)  # a busy machine imports slowly
        async with browser(production) as http:
            for secret in (PASSWORD, factory.token(director)):
                assert (await login(http, director.email, secret)).status_code == 400
            # F1: a cookie signed with the public development key opens nothing.
            http.cookies.set("mentorship_admin", forged_session_cookie(director))
            assert (await http.get("/admin/users/list")).status_code == 302
            # The API itself still serves.
            assert (await http.get("/api/v1/whoami", headers=factory.headers(director)
                            )).status_code == 200
    finally:
        production.stop()


class TestEditsValidatedLikeTheApi:
    @pytest.mark.parametrize(("field", "value", "message"), [
        ("timezone", "Mars/Base", "unknown IANA time zone"),
        ("mentor_capacity_weekly", "101", "between 0 and 100"),
        ("mentor_max_mentees", "51", "between 0 and 50"),
        ("name", "Nul\x00Byte", "NUL"),
        ("email", "not-an-email", "email"),
    ])
    async def test_an_invalid_edit_is_refused_with_a_message(
            self, server, factory, system_db, field, value, message):
        director = await factory.user("director")
        mentor = await factory.mentor(timezone="Europe/Paris")
        before = await saved_user(system_db, mentor.id)
        # example.org: the factories' example.test is a name the API's schema refuses.
        form = {"name": mentor.name, "email": f"m-{mentor.id.hex[:8]}@example.org",
                "tier": mentor.tier or "",
                "timezone": mentor.timezone, "mentor_capacity_weekly": "5",
                "mentor_max_mentees": "5", "save": "Save", field: value}
        async with browser(server) as http:
            assert (await login(http, director.email)).status_code == 302
            response = await http.post(f"/admin/users/edit/{mentor.id}", data=form)
        assert response.status_code == 400, response.text
        assert message.lower() in response.text.lower()
        after = await saved_user(system_db, mentor.id)
        assert (after.name, after.email, after.timezone, after.mentor_capacity_weekly,
                after.mentor_max_mentees) == (before.name, before.email, before.timezone,
                                              before.mentor_capacity_weekly,
                                              before.mentor_max_mentees)
