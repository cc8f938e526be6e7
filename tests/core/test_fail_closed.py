"""Fail closed (CONTRACT v2 "Errors and limits"; issue 16 F1): outside development the API,
the worker and the CLI refuse to start with a missing, public or short JWT key, and
`ENVIRONMENT` defaults to production."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.config import DEV_JWT_SECRET, InsecureSettings, Settings
from app.main import create_app
from app.workers import startup as worker_startup
from tests.support.harness import ROOT

GOOD_SECRET = "s" * 32


def _pem(key) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


RSA_PUBLIC = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC_PUBLIC = _pem(ec.generate_private_key(ec.SECP256R1()))

INSECURE = {
    "missing secret": {"jwt_secret": None},
    "empty secret": {"jwt_secret": ""},
    "development secret": {"jwt_secret": DEV_JWT_SECRET},
    "31-byte secret": {"jwt_secret": "s" * 31},
    "RS256 without a key": {"jwt_algorithm": "RS256", "jwt_public_key": None},
    "RS256 with garbage": {"jwt_algorithm": "RS256", "jwt_public_key": "-----BEGIN nonsense"},
    "RS256 with an EC key": {"jwt_algorithm": "RS256", "jwt_public_key": EC_PUBLIC},
}


def test_environment_defaults_to_production(monkeypatch):
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.delenv("JWT_SECRET", raising=False)
    settings = Settings(_env_file=None)
    assert settings.environment == "production"
    assert settings.jwt_secret is None  # the development secret never fills in here
    with pytest.raises(InsecureSettings, match="JWT_SECRET is not set"):
        settings.require_secure("x")


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("case", list(INSECURE), ids=list(INSECURE))
def test_the_api_refuses_to_start(settings, environment, case):
    bad = settings.model_copy(update={"environment": environment, **INSECURE[case]})
    with pytest.raises(InsecureSettings, match="The API refuses to start"):
        create_app(bad)


@pytest.mark.parametrize("case", list(INSECURE), ids=list(INSECURE))
async def test_the_worker_refuses_to_start(settings, case):
    bad = settings.model_copy(update={"environment": "production", **INSECURE[case]})
    ctx: dict = {"settings": bad}
    with pytest.raises(InsecureSettings, match="The worker refuses to start"):
        await worker_startup(ctx)
    assert "db" not in ctx  # refused before connecting to anything


@pytest.mark.parametrize("update", [
    {"jwt_secret": GOOD_SECRET},
    {"jwt_algorithm": "RS256", "jwt_public_key": RSA_PUBLIC, "jwt_secret": None},
    {"environment": "development", "jwt_secret": DEV_JWT_SECRET},
], ids=["32-byte secret", "RS256 key", "development"])
def test_proper_keys_start(settings, update):
    good = settings.model_copy(update={"environment": "production", **update})
    assert good.insecure_settings() == []
    create_app(good)


def test_development_fills_in_the_development_secret(monkeypatch):
    monkeypatch.delenv("JWT_SECRET", raising=False)
    settings = Settings(_env_file=None, environment="development")
    assert settings.jwt_secret == DEV_JWT_SECRET and settings.insecure_settings() == []


def _run(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("ENVIRONMENT", "JWT_SECRET")}
    return subprocess.run(argv, cwd=ROOT, env={**environment, **env}, capture_output=True,
                          text=True, timeout=timeout, check=False)


async def test_real_processes_refuse_without_a_secret(settings):
    """The real entry points, ENVIRONMENT unset (so production) and no JWT_SECRET: uvicorn
    (API), arq (worker) and `mentorship token` exit non-zero and say why; with a proper
    secret the CLI works."""
    py = sys.executable
    api, worker, cli, cli_ok = await asyncio.gather(
        asyncio.to_thread(_run, [py, "-m", "uvicorn", "--factory", "app.main:create_app",
                                 "--port", "0"], {}),
        asyncio.to_thread(_run, [py, "-m", "arq", "app.workers.WorkerSettings"], {}),
        asyncio.to_thread(_run, [py, "-m", "app.devtools.cli", "token", "--user-id",
                                 "00000000-0000-4000-8000-000000000001", "--role", "admin"], {}),
        asyncio.to_thread(_run, [py, "-m", "app.devtools.cli", "token", "--user-id",
                                 "00000000-0000-4000-8000-000000000001", "--role", "admin"],
                          {"JWT_SECRET": GOOD_SECRET}),
    )
    for name, result in (("api", api), ("worker", worker), ("cli", cli)):
        assert result.returncode != 0, (name, result.stdout, result.stderr)
        assert "refuses to start with ENVIRONMENT=production: JWT_SECRET is not set" in (
            result.stdout + result.stderr), name
    assert cli_ok.returncode == 0, cli_ok.stderr
    assert cli_ok.stdout.count(".") == 2  # a JWT


async def test_database_errors_hide_statement_parameters(app_db):
    """SQLAlchemy's error text (and so any log of it) lists no parameter values."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as caught:
        async with app_db.transaction(None) as session:
            await session.execute(text("select 1 / (cast(:v as bigint) - :v)"),
                                  {"v": 987654321})
    assert "987654321" not in str(caught.value)
    assert "hidden due to hide_parameters" in str(caught.value)
