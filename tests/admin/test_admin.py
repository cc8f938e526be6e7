"""Admin UI at /admin: who may log in, what each staff role sees, read-only tables, search.
The browser test (headless Debian Chromium driven by Playwright) is at the bottom."""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import itsdangerous
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from sqlalchemy import func, select, update

from app.admin import VIEWS, _current
from app.config import DEV_ADMIN_SECRET_KEY
from app.core.auth import Principal
from app.main import create_app
from app.models import Base, InboxEvent, User, WebhookEndpoint
from tests.support.live import live_server
from tests.support.tools import require_tool

PASSWORD = "correct-horse-battery-staple"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
async def admin_app(settings):
    application = create_app(settings.model_copy(
        update={"admin_ui_password": SecretStr(PASSWORD)}))
    async with LifespanManager(application):
        yield application


def forged_session_cookie(user: User, key: str = DEV_ADMIN_SECRET_KEY) -> str:
    """A session cookie as Starlette's SessionMiddleware signs it, with `key`."""
    payload = json.dumps({"user_id": str(user.id), "role": user.role,
                          "exp": int(time.time()) + 3600}).encode()
    return itsdangerous.TimestampSigner(key).sign(base64.b64encode(payload)).decode()


def _client(application) -> httpx.AsyncClient:
    """Like a browser on the admin UI: it sends `Origin` with its POSTs; each client has its
    own address, so the per-client login lockout of one test never touches another."""
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    transport = httpx.ASGITransport(app=application, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://t",
                             headers={"Origin": "http://t"})


async def login(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/admin/login", data={"username": email, "password": password})


def test_every_table_has_a_view():
    assert {view.model.__tablename__ for view in VIEWS} == set(Base.metadata.tables)
    for view in VIEWS:
        assert view.column_searchable_list and view.column_filters, view.identity


class TestLogin:
    async def test_director_logs_in_with_email_and_the_admin_password(self, admin_app, factory):
        director = await factory.user("director")
        async with _client(admin_app) as http:
            response = await login(http, director.email.upper(), PASSWORD)
            assert response.status_code == 302
            assert response.headers["location"].endswith("/admin/")
            assert (await http.get("/admin/")).status_code == 200

    async def test_admin_logs_in_with_a_platform_token(self, admin_app, factory):
        admin = await factory.user("admin")
        async with _client(admin_app) as http:
            assert (await login(http, admin.email, factory.token(admin))).status_code == 302
            assert (await http.get("/admin/outbox-events/list")).status_code == 200

    @pytest.mark.parametrize("role", ["mentee", "mentor", "service"])
    async def test_other_roles_cannot_log_in(self, admin_app, factory, role):
        user = await factory.user(role)
        async with _client(admin_app) as http:
            for secret in (PASSWORD, factory.token(user)):
                response = await login(http, user.email, secret)
                assert response.status_code == 400 and "Invalid credentials" in response.text
            assert (await http.get("/admin/")).status_code == 302  # back to the login

    async def test_wrong_secrets_are_refused(self, admin_app, factory):
        director = await factory.user("director")
        other = await factory.user("director")
        mentee = await factory.mentee()
        async with _client(admin_app) as http:
            for email, secret in ((director.email, PASSWORD + "x"), (director.email, ""),
                                  (director.email, factory.token(other)),  # someone else's
                                  (director.email, factory.token(director.id, "mentee")),
                                  (director.email, factory.token(mentee)),
                                  (f"nobody-{uuid.uuid4().hex}@x.test", PASSWORD)):
                assert (await login(http, email, secret)).status_code == 400

    async def test_without_admin_password_only_tokens_work(self, settings, factory):
        director = await factory.user("director")
        application = create_app(settings)  # ADMIN_UI_PASSWORD unset
        assert settings.admin_ui_password is None
        async with LifespanManager(application), _client(application) as http:
            assert (await login(http, director.email, "")).status_code == 400
            assert (await login(http, director.email, "anything")).status_code == 400
            assert (await login(http, director.email, factory.token(director))).status_code == 302

    @pytest.mark.parametrize("key", [None, DEV_ADMIN_SECRET_KEY, "short-key"],
                             ids=["missing", "development", "short"])
    async def test_production_without_a_proper_session_key_lets_nobody_in(
            self, settings, factory, key):
        director = await factory.user("director")
        application = create_app(settings.model_copy(update={
            "environment": "production", "admin_secret_key": key,
            "admin_ui_password": SecretStr(PASSWORD)}))
        async with LifespanManager(application), _client(application) as http:
            for secret in (PASSWORD, factory.token(director)):
                assert (await login(http, director.email, secret)).status_code == 400
            # F1: a cookie signed with the public development key opens nothing.
            http.cookies.set("mentorship_admin", forged_session_cookie(director))
            assert (await http.get("/admin/users/list")).status_code == 302
            assert (await http.get("/api/v1/whoami", headers=factory.headers(director))
                    ).status_code == 200  # the API itself still serves

    async def test_even_the_configured_key_cannot_forge_a_session(self, admin_app, settings,
                                                                  factory):
        """Sessions live server-side: a cookie signed with the configured key itself opens
        nothing unless it names a session a login stored."""
        director = await factory.user("director")
        async with _client(admin_app) as http:
            http.cookies.set("mentorship_admin",
                             forged_session_cookie(director, settings.admin_secret_key))
            assert (await http.get("/admin/users/list")).status_code == 302
            http.cookies.clear()
            assert (await login(http, director.email, PASSWORD)).status_code == 302
            assert (await http.get("/admin/users/list")).status_code == 200

    async def test_a_demoted_user_loses_access_at_once(self, admin_app, factory, system_db):
        director = await factory.user("director")
        async with _client(admin_app) as http:
            assert (await login(http, director.email, PASSWORD)).status_code == 302
            assert (await http.get("/admin/sessions/list")).status_code == 200
            async with system_db.transaction(None) as session:
                await session.execute(update(User).where(User.id == director.id)
                                      .values(role="mentor"))
            assert (await http.get("/admin/sessions/list")).status_code == 302


class TestWhatStaffSee:
    async def test_directors_do_not_see_admin_only_tables(self, admin_app, factory):
        director = await factory.user("director")
        async with _client(admin_app) as http:
            await login(http, director.email, PASSWORD)
            index = (await http.get("/admin/")).text
            assert "Sessions" in index and "Outbox" not in index
            for identity in ("outbox-events", "inbox-events", "webhook-deliveries",
                             "webhook-attempts", "webhook-endpoints"):
                assert (await http.get(f"/admin/{identity}/list")).status_code == 403

    async def test_queries_run_under_the_staff_members_rls_identity(self, admin_app, system_db):
        """The admin views' sessions set app.user_id / app.role: a director's identity
        sees no inbox rows (RLS: admin or service), an admin's does, none sees nothing."""
        async with system_db.transaction(None) as session:
            session.add(InboxEvent(id=uuid.uuid4(), type="test.admin"))
        view = next(v for v in VIEWS if v.model is InboxEvent)
        counts = {}
        for role in ("admin", "director", None):
            token = _current.set(Principal(uuid.uuid4(), role) if role else None)
            try:
                async with view.session_maker() as session:
                    counts[role] = await session.scalar(
                        select(func.count()).select_from(InboxEvent))
            finally:
                _current.reset(token)
        assert counts["admin"] >= 1 and counts["director"] == 0 and counts[None] == 0

    async def test_event_and_domain_tables_are_read_only(self, admin_app, factory):
        admin = await factory.user("admin")
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        booked = await factory.session(mentor, mentee)
        async with _client(admin_app) as http:
            await login(http, admin.email, factory.token(admin))
            for identity in ("outbox-events", "inbox-events", "webhook-deliveries",
                             "webhook-attempts", "sessions", "work-items", "flags"):
                assert (await http.get(f"/admin/{identity}/create")).status_code == 403
            assert (await http.get(f"/admin/sessions/edit/{booked.id}")).status_code == 403
            delete = await http.delete(f"/admin/sessions/delete?pks={booked.id}")
            assert delete.status_code == 403
            assert (await http.get(f"/admin/sessions/details/{booked.id}")).status_code == 200

    async def test_webhook_secrets_are_never_shown(self, admin_app, factory):
        admin = await factory.user("admin")
        endpoint = WebhookEndpoint(url="https://hooks.example/x",
                                   secret=f"whsec_{uuid.uuid4().hex}")
        await factory.add(endpoint)
        async with _client(admin_app) as http:
            await login(http, admin.email, factory.token(admin))
            for page in ("/admin/webhook-endpoints/list",
                         f"/admin/webhook-endpoints/details/{endpoint.id}",
                         f"/admin/webhook-endpoints/edit/{endpoint.id}",
                         "/admin/webhook-endpoints/export/csv"):
                response = await http.get(page)
                assert response.status_code == 200, page
                assert endpoint.secret not in response.text

    async def test_search_and_filter_sessions(self, admin_app, factory):
        director = await factory.user("director")
        mentor, (a, b) = await factory.mentor_with_mentees(2)
        marker = uuid.uuid4().hex[:10]
        start = datetime.now(UTC) + timedelta(days=3)
        await factory.session(mentor, a, starts_at=start, agenda=f"Portfolio {marker}")
        await factory.session(mentor, b, starts_at=start + timedelta(hours=2),
                              agenda=f"Interview {marker}", status="cancelled")
        async with _client(admin_app) as http:
            await login(http, director.email, PASSWORD)
            found = (await http.get("/admin/sessions/list",
                                    params={"search": f"Portfolio {marker}"})).text
            assert f"Portfolio {marker}" in found and f"Interview {marker}" not in found
            cancelled = (await http.get("/admin/sessions/list",
                                        params={"search": marker, "status": "cancelled"})).text
            assert f"Interview {marker}" in cancelled and f"Portfolio {marker}" not in cancelled


async def test_browser_logs_in_searches_sessions_and_mentee_is_refused(settings, factory):
    """Headless Debian Chromium (Playwright with its executable path; no browser download)."""
    from playwright.async_api import async_playwright

    chromium = require_tool("chromium")  # Debian's, never a downloaded browser build
    director = await factory.user("director", name="Dana Director")
    mentee_user = await factory.mentee()
    mentor, (a, b) = await factory.mentor_with_mentees(2)
    marker = uuid.uuid4().hex[:8]
    start = datetime.now(UTC) + timedelta(days=2)
    await factory.session(mentor, a, starts_at=start, agenda=f"Quarterly portfolio review {marker}")
    await factory.session(mentor, b, starts_at=start + timedelta(hours=3),
                          agenda=f"Mock interview {marker}")
    ARTIFACTS.mkdir(exist_ok=True)

    with live_server({"ADMIN_UI_PASSWORD": PASSWORD}) as server:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium,
                                                       args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1600, "height": 900})
                # The admin pages' CSP must not block anything sqladmin's pages use.
                console: list[str] = []
                page.on("console", lambda message: console.append(message.text))
                await page.goto(f"{server.url}/admin/login")
                await page.fill("input[name=username]", director.email)
                await page.fill("input[name=password]", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(f"{server.url}/admin/")

                await page.goto(f"{server.url}/admin/sessions/list")
                assert f"Mock interview {marker}" in await page.content()
                await page.fill("#search-input", f"portfolio review {marker}")
                await page.press("#search-input", "Enter")
                await page.wait_for_url("**/admin/sessions/list?*search=*")
                await page.wait_for_selector(f"text=Quarterly portfolio review {marker}")
                content = await page.content()
                assert f"Quarterly portfolio review {marker}" in content
                assert f"Mock interview {marker}" not in content
                await page.screenshot(path=str(ARTIFACTS / "admin-sessions-search.png"),
                                      full_page=True)
                assert not [m for m in console if "Content Security Policy" in m], console

                refused = await browser.new_page()  # a fresh context: no session cookie
                await refused.goto(f"{server.url}/admin/login")
                await refused.fill("input[name=username]", mentee_user.email)
                await refused.fill("input[name=password]", PASSWORD)
                await refused.click("button[type=submit]")
                await refused.wait_for_selector("text=Invalid credentials")
                assert refused.url.endswith("/admin/login")
                await refused.goto(f"{server.url}/admin/sessions/list")
                assert refused.url.endswith("/admin/login")
                await refused.screenshot(path=str(ARTIFACTS / "admin-mentee-refused.png"))
            finally:
                await browser.close()
    assert (ARTIFACTS / "admin-sessions-search.png").stat().st_size > 10_000


async def test_a_director_edits_a_users_details_under_rls(admin_app, factory, system_db):
    director = await factory.user("director")
    mentor = await factory.mentor(tier="3")
    email = f"renamed-{mentor.id.hex[:8]}@example.org"  # the API's schema refuses example.test
    async with _client(admin_app) as http:
        await login(http, director.email, PASSWORD)
        form = (await http.get(f"/admin/users/edit/{mentor.id}")).text
        assert 'name="mentor_capacity_weekly"' in form and 'name="role"' not in form
        response = await http.post(f"/admin/users/edit/{mentor.id}", data={
            "name": "Renamed Mentor", "email": email, "tier": "4",
            "timezone": "Europe/Paris", "mentor_capacity_weekly": "12",
            "mentor_max_mentees": "15", "save": "Save"})
        assert response.status_code == 302, response.text
    async with system_db.transaction(None) as session:
        saved = await session.get(User, mentor.id)
    assert (saved.name, saved.email, saved.tier, saved.timezone, saved.mentor_capacity_weekly,
            saved.mentor_max_mentees, saved.role) == (
        "Renamed Mentor", email, "4", "Europe/Paris", 12, 15, "mentor")
