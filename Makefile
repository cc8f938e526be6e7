# The two commands of the README: `make dev` (set up and run everything) and `make test`.
# Options pass through: `make dev ARGS="--port 9000 --workers 2"` (or `make dev PORT=9000`),
# `make test ARGS="tests/devtools -x"`.
.PHONY: setup test-setup dev test lint client image-test

setup:
	@scripts/bootstrap

# As root with apt, also the Debian tools some tests drive (see scripts/bootstrap).
test-setup:
	@scripts/bootstrap --test-tools

dev: setup
	.venv/bin/mentorship dev $(if $(PORT),--port $(PORT)) $(ARGS)

test: test-setup
	.venv/bin/pytest $(ARGS)

lint: setup
	.venv/bin/ruff check app tests bench migrations deploy

# The SPA's TypeScript types, regenerated from /openapi.json (commit the result).
client: setup
	scripts/generate-ts-client

# Build the container image and run the compose stack end to end (needs a Docker engine;
# README "Container image").
image-test: setup
	.venv/bin/python -m deploy.image_test
