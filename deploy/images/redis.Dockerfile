# Debian's Redis 7 run like the official redis image: `redis-server [options]`, data in
# /data, reachable from other containers (REDIS_IMAGE=mentorship/redis:... in compose.yaml).
ARG DEBIAN_IMAGE=mentorship/debian:bookworm
FROM ${DEBIAN_IMAGE}
# Debian packages float with the stable release and its security updates: not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/redis-entrypoint.sh
# The package made the user; its uid is whatever it got there.
# hadolint ignore=DL3066
USER redis:redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/redis-entrypoint.sh"]
CMD ["redis-server"]
