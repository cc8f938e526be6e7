# One image for every process of the service; they differ only by command:
#   API (default)   uvicorn --factory app.main:create_app --host 0.0.0.0 --port 8000
#   worker          arq app.workers.WorkerSettings
#   migrations      mentorship migrate
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: resolve the locked dependencies into /app/.venv ---------------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project --no-editable
COPY app ./app
RUN uv sync --frozen --no-editable

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
CMD ["uvicorn", "--factory", "app.main:create_app", "--host", "0.0.0.0", "--port", "8000"]
