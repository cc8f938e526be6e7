# The two commands of the README: `make dev` (set up and run everything) and `make test`.
.PHONY: setup dev test lint

setup:
	@scripts/bootstrap

dev: setup
	.venv/bin/mentorship dev

test: setup
	.venv/bin/pytest

lint: setup
	.venv/bin/ruff check app tests bench migrations
