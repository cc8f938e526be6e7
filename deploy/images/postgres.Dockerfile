# Debian's PostgreSQL 15 with the environment interface of the official postgres image
# (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB, PGDATA; data in /var/lib/postgresql/data),
# so compose.yaml runs it in place of postgres:16-alpine: POSTGRES_IMAGE=mentorship/postgres:...
ARG DEBIAN_IMAGE=mentorship/debian:bookworm
FROM ${DEBIAN_IMAGE}
# The package creates a cluster 15/main; the entrypoint makes its own in PGDATA instead.
# Debian packages float with the stable release and its security updates: not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/15 /etc/postgresql/15
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
RUN mkdir -p "$PGDATA" /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 "$PGDATA"
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
# The package made the user; its uid is whatever it got there.
# hadolint ignore=DL3066
USER postgres:postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
# SIGINT is PostgreSQL's "fast" shutdown (the official image's choice too).
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
