# Debian bookworm + its Python 3.11: a local stand-in for the official python:3.11-slim-bookworm
# (the app Dockerfile's PYTHON_IMAGE) on machines that cannot pull from a registry.
ARG DEBIAN_IMAGE=mentorship/debian:bookworm
FROM ${DEBIAN_IMAGE}
# python3-venv brings ensurepip (the app image installs uv with pip into a venv);
# ca-certificates for HTTPS to PyPI during builds, plus the building host's extra CAs
# (deploy/local-images puts them in the context; none on an ordinary machine).
COPY ca-certificates/ /usr/local/share/ca-certificates/
# Debian packages float with the stable release and its security updates: not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && update-ca-certificates \
    && ln -s /usr/bin/python3 /usr/local/bin/python
ENV LANG=C.UTF-8
CMD ["python3"]
