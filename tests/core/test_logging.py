"""JSON logs: request id, user, route, status, duration; never a token or a secret."""

from __future__ import annotations

import json
import logging

import httpx

from app.core.logging import REDACTED, configure_logging, redact_secrets, redact_text
from tests.support.live import live_server


class TestRedaction:
    def test_sensitive_keys_are_redacted_at_any_depth(self):
        event = redact_secrets(None, "info", {
            "event": "call", "authorization": "Bearer abc", "jwt_secret": "s3",
            "headers": {"Cookie": "a=b", "accept": "json"},
            "items": [{"password": "hunter2"}], "count": 3,
        })
        assert event["authorization"] == event["jwt_secret"] == REDACTED
        assert event["headers"] == {"Cookie": REDACTED, "accept": "json"}
        assert event["items"] == [{"password": REDACTED}]
        assert event["count"] == 3 and event["event"] == "call"

    def test_secrets_inside_text_are_redacted(self):
        jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXN0dWZm"
        line = (f'127.0.0.1 - "GET /api/v1/mentor/dashboard/stream?x=1&access_token={jwt} '
                f'HTTP/1.1" 200 Authorization: Bearer {jwt} '
                f"postgresql://mentorship_app:pa55word@db:5432/m ?token=abc&secret=xyz")
        cleaned = redact_text(line)
        assert jwt not in cleaned and "pa55word" not in cleaned
        assert "abc" not in cleaned and "xyz" not in cleaned
        assert f"access_token={REDACTED}" in cleaned and "x=1" in cleaned
        assert "/api/v1/mentor/dashboard/stream" in cleaned

    def test_objects_are_rendered_then_scrubbed(self):
        class Url:
            def __str__(self) -> str:
                return "https://x.test/cb?api_key=k-123"

        assert redact_secrets(None, "info", {"event": "e", "url": Url()})["url"] == (
            f"https://x.test/cb?api_key={REDACTED}")

    def test_stdlib_records_are_json_and_redacted(self, capsys):
        configure_logging(json=True)
        logging.getLogger("some.library").warning("calling https://h/?access_token=leaky")
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["logger"] == "some.library" and record["level"] == "warning"
        assert "leaky" not in line


async def test_a_full_request_cycle_logs_no_token(settings, factory):
    director = await factory.user("director")
    token = factory.token(director)
    mentee_token = factory.token(await factory.mentee())
    with live_server({"ADMIN_UI_PASSWORD": "correct-horse-battery"}) as server:
        # The admin UI refuses cross-origin posts (issue 16): these logins come from our origin.
        async with httpx.AsyncClient(base_url=server.url, headers={"Origin": server.url}) as http:
            ok = await http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}",
                                                     "X-Request-ID": "trace-me-1"})
            assert ok.status_code == 200 and ok.headers["x-request-id"] == "trace-me-1"
            assert (await http.get(f"/api/v1/whoami?access_token={token}")).status_code == 401
            assert (await http.get(f"/healthz?access_token={mentee_token}")).status_code == 200
            assert (await http.get(f"/api/v1/nothing/{token}")).status_code == 404
            bad = await http.get("/api/v1/whoami", headers={"Authorization": "Bearer not.a.jwt"})
            assert bad.status_code == 401
            login = await http.post("/admin/login", data={"username": director.email,
                                                    "password": token})
            assert login.status_code == 302
            refused = await http.post("/admin/login", data={"username": director.email,
                                                      "password": "correct-horse-wrong"})
            assert refused.status_code == 400
        server.stop()
        logs = server.logs()

    for secret in (token, mentee_token, token.split(".")[2], "correct-horse-battery",
                   "correct-horse-wrong", "not.a.jwt"):
        assert secret not in logs
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert len(records) == len(logs.strip().splitlines())  # every line is JSON
    (traced,) = [r for r in records if r.get("request_id") == "trace-me-1"]
    assert traced["event"] == "request" and traced["route"] == "/api/v1/whoami"
    assert traced["status"] == 200 and traced["user_id"] == str(director.id)
    assert traced["duration_ms"] >= 0 and traced["method"] == "GET"
    not_found = [r for r in records if r.get("event") == "request" and r["status"] == 404]
    assert not_found and all(token not in r["path"] for r in not_found)
    assert any(r["logger"] == "uvicorn.error" and "Application startup complete" in r["event"]
               for r in records)
    assert not any("HTTP/1.1" in r.get("event", "") for r in records)  # uvicorn access log off
    assert any(r.get("event") == "admin_login" and r["user_id"] == str(director.id)
               for r in records)
