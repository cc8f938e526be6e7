# The two commands of the README: `make dev` (set up and run everything) and `make test`.
# Options pass through: `make dev ARGS="--port 9000 --workers 2"` (or `make dev PORT=9000`),
# `make test ARGS="tests/devtools -x"`.
.PHONY: setup dev test lint

setup:
	@scripts/bootstrap

dev: setup
	.venv/bin/mentorship dev $(if $(PORT),--port $(PORT)) $(ARGS)

test: setup
	.venv/bin/pytest $(ARGS)

lint: setup
	.venv/bin/ruff check app tests bench migrations
