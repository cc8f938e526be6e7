# One image for every process of the service; they differ only by command:
#   API (default)   uvicorn --factory app.main:create_app --host 0.0.0.0 --port 8000
#   worker          arq app.workers.WorkerSettings
#   migrations      mentorship migrate
# PYTHON_IMAGE is any Debian-based Python 3.11: the official image by default, or the local
# Debian + python3.11 base that `deploy/local-images` makes where no registry is reachable
# (`docker build --build-arg PYTHON_IMAGE=mentorship/python:3.11-bookworm .`). Both stages
# use it, so the virtualenv's interpreter path is the same at build and at run time.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: resolve the locked dependencies into /app/.venv ---------------------------------
FROM ${PYTHON_IMAGE} AS build
# uv from PyPI (never copied from a registry image), in a venv of its own that stays here.
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir --quiet "uv==0.13.8"
# UV_SYSTEM_CERTS: trust the base image's CA store (where a TLS-inspecting proxy's CA sits).
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_SYSTEM_CERTS=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON=python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN /opt/uv/bin/uv sync --frozen --no-install-project --no-editable
COPY app ./app
RUN /opt/uv/bin/uv sync --frozen --no-editable

# --- runtime: the virtualenv, the migrations, an unprivileged user --------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 mentorship \
    && useradd --system --uid 10001 --gid mentorship --home-dir /app --no-create-home mentorship
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
# `mentorship migrate` reads alembic.ini from the working directory.
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production
USER 10001:10001
EXPOSE 8000
# The API's readiness (GET /readyz: Postgres and Redis reachable), by a probe that imports
# none of the app. compose.yaml gives the worker its probe (`app.core.probe worker`) and the
# one-shot migration none.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "app.core.probe", "api"]
# uvicorn is PID 1 (exec form): SIGTERM from `docker stop` starts its graceful shutdown.
CMD ["uvicorn", "--factory", "app.main:create_app", "--host", "0.0.0.0", "--port", "8000"]
