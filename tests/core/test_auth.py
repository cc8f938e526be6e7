"""JWT verification: every failure is a 401 problem, a wrong role a 403 problem."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.core.auth import CurrentMentor, mint_token
from app.main import create_app

USER = uuid.uuid4()  # a mentor (created by the autouse fixture below)
MENTEE = uuid.uuid4()


@pytest.fixture(autouse=True, scope="module")
async def _users(factory):
    """Tokens are honoured only for real, active users with the token's role."""
    await factory.mentor(id=USER)
    await factory.mentee(id=MENTEE)


def _claims(**overrides):
    claims = {"sub": str(USER), "role": "mentor", "exp": datetime.now(UTC) + timedelta(hours=1)}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["code"] and body["title"] and body["type"]
    if code:
        assert body["code"] == code


async def _whoami(client, token: str | None, scheme: str = "Bearer"):
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return await client.get("/api/v1/whoami", headers=headers)


async def test_valid_token_is_accepted(client, settings):
    response = await _whoami(client, mint_token(USER, "mentor", settings))
    assert response.status_code == 200
    assert response.json() == {"user_id": str(USER), "role": "mentor"}


@pytest.mark.parametrize(
    ("name", "make_token", "code"),
    [
        ("missing", lambda s: None, "missing_token"),
        ("malformed", lambda s: "not.a.jwt", "invalid_token"),
        ("expired", lambda s: jwt.encode(
            _claims(exp=datetime.now(UTC) - timedelta(seconds=5)), s.jwt_secret, "HS256"),
         "token_expired"),
        ("alg none", lambda s: jwt.encode(_claims(), None, algorithm="none"), "invalid_token"),
        ("wrong secret", lambda s: jwt.encode(_claims(), "x" * 40, "HS256"), "invalid_token"),
        ("wrong algorithm", lambda s: jwt.encode(_claims(), s.jwt_secret * 2, "HS512"),
         "invalid_token"),
        ("no exp", lambda s: jwt.encode(_claims(exp=None) | {}, s.jwt_secret, "HS256"),
         "invalid_token"),
        ("no role", lambda s: jwt.encode(_claims(role=None), s.jwt_secret, "HS256"),
         "invalid_token"),
        ("unknown role", lambda s: jwt.encode(_claims(role="root"), s.jwt_secret, "HS256"),
         "invalid_token"),
        ("sub not uuid", lambda s: jwt.encode(_claims(sub="alice"), s.jwt_secret, "HS256"),
         "invalid_token"),
        # F9: validly signed, `exp` in the future by PyJWT's reading, but not a usable date.
        ("exp a numeric string", lambda s: jwt.encode(_claims(exp="9999999999"), s.jwt_secret,
                                                      "HS256"), "invalid_token"),
        ("exp 10**13", lambda s: jwt.encode(_claims(exp=10**13), s.jwt_secret, "HS256"),
         "invalid_token"),
        ("exp 1e300", lambda s: jwt.encode(_claims(exp=1e300), s.jwt_secret, "HS256"),
         "invalid_token"),
        ("exp 10**400", lambda s: jwt.encode(_claims(exp=10**400), s.jwt_secret, "HS256"),
         "invalid_token"),
    ],
)
async def test_bad_tokens_are_401_problems(client, settings, name, make_token, code):
    response = await _whoami(client, make_token(settings))
    _assert_problem(response, 401, code)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_basic_scheme_is_401(client):
    _assert_problem(await _whoami(client, "dXNlcjpwYXNz", scheme="Basic"), 401)


async def _only_mentors(principal: CurrentMentor) -> dict[str, str]:
    return {"ok": principal.role}


@pytest.fixture
async def configured_app(settings):
    """An app whose settings pin RS256 with issuer and audience, plus a mentor-only route."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    rs = settings.model_copy(update={
        "jwt_algorithm": "RS256", "jwt_public_key": public, "jwt_private_key": private,
        "jwt_issuer": "https://id.example", "jwt_audience": "mentorship",
    })
    application = create_app(rs)

    application.add_api_route("/only-mentors", _only_mentors)

    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http, rs, private


async def test_rs256_with_issuer_and_audience(configured_app, settings):
    http, rs, private = configured_app
    good = mint_token(USER, "mentor", rs)
    assert (await http.get("/only-mentors", headers={"Authorization": f"Bearer {good}"})).json() \
        == {"ok": "mentor"}
    cases = {
        "wrong audience": jwt.encode(_claims(iss="https://id.example", aud="other"), private,
                                     "RS256"),
        "wrong issuer": jwt.encode(_claims(iss="https://evil", aud="mentorship"), private,
                                   "RS256"),
        "no audience": jwt.encode(_claims(iss="https://id.example"), private, "RS256"),
        # HS256 signed with the public key: the classic algorithm-confusion attack.
        "hs256 with public key": jwt.encode(
            _claims(iss="https://id.example", aud="mentorship"), settings.jwt_secret, "HS256"),
    }
    for _name, token in cases.items():
        response = await http.get("/only-mentors", headers={"Authorization": f"Bearer {token}"})
        _assert_problem(response, 401)


async def test_wrong_role_is_403(configured_app):
    http, rs, _ = configured_app
    token = mint_token(MENTEE, "mentee", rs)
    response = await http.get("/only-mentors", headers={"Authorization": f"Bearer {token}"})
    _assert_problem(response, 403, "wrong_role")
