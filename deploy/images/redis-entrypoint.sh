#!/bin/sh
# Started without a config file, Redis binds every interface in protected mode, which refuses
# other containers; the official image builds Redis with protected mode off. Do the same with
# an option (after the config file, if one is given first).
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  if [ $# -gt 0 ] && [ -f "$1" ]; then
    config=$1
    shift
    set -- redis-server "$config" --protected-mode no "$@"
  else
    set -- redis-server --protected-mode no "$@"
  fi
fi
exec "$@"
