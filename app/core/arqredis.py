"""arq's keys under the deployment's `REDIS_PREFIX`.

arq 0.28 hard-codes its key names (`arq:job:<id>`, `arq:result:<id>`, `arq:in-progress:<id>`,
`arq:retry:<id>`, `arq:abort`) as module constants, and cron job ids are deterministic, so
two deployments (or test runs) sharing one Redis database would read and steal each other's
jobs and cron ticks. arq has no setting for them, but it sends every command through the
client it is given (`Worker(redis_pool=...)`, `ArqRedis.enqueue_job`, `Job`), so this client
moves every key it is asked about under the prefix, in plain commands and in pipelines alike:
`arq:job:x` is stored as `<prefix>arq:job:x`. A key already under the prefix (the queue and
health-check names we give arq, which `arq --check` reads with a plain client) is left as is.
A command whose keys this module does not know is refused rather than sent unprefixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio.client import Pipeline

# Commands arq sends, by where their keys are.
_FIRST_KEY = frozenset({
    "GET", "SET", "SETEX", "PSETEX", "INCR", "INCRBY", "DECR", "DECRBY", "EXPIRE", "PEXPIRE",
    "TTL", "PTTL", "TYPE",
    "ZADD", "ZREM", "ZCARD", "ZSCORE", "ZINCRBY", "ZRANGE", "ZRANGEBYSCORE",
    "ZREMRANGEBYSCORE", "ZCOUNT",
})
_ALL_KEYS = frozenset({"EXISTS", "DEL", "UNLINK", "WATCH", "MGET"})
_NO_KEYS = frozenset({
    "PING", "INFO", "DBSIZE", "MULTI", "EXEC", "DISCARD", "UNWATCH", "CLIENT", "ECHO", "TIME",
    "SELECT", "HELLO", "AUTH",
})


def namespaced(prefix: str, key: Any) -> Any:
    if isinstance(key, bytes):
        encoded = prefix.encode()
        return key if key.startswith(encoded) else encoded + key
    key = str(key)
    return key if key.startswith(prefix) else prefix + key


def namespace_command(prefix: str, args: Sequence[Any]) -> tuple[Any, ...]:
    """The command with its keys (and a KEYS pattern) under `prefix`."""
    name = _command(args)
    if name in _FIRST_KEY or name == "KEYS":
        return (args[0], namespaced(prefix, args[1]), *args[2:])
    if name in _ALL_KEYS:
        return (args[0], *(namespaced(prefix, key) for key in args[1:]))
    if name in _NO_KEYS:
        return tuple(args)
    raise ValueError(f"{name} is not namespaced by {__name__}: add where its keys are")


def _command(args: Sequence[Any]) -> str:
    """`CLIENT SETNAME` arrives as one argument: its first word names the command."""
    return str(args[0]).split(" ", 1)[0].upper()


def _strip(prefix: str, key: Any) -> Any:
    if isinstance(key, bytes):
        return key[len(prefix.encode()):]
    return key[len(prefix):]


class NamespacedPipeline(Pipeline):
    key_prefix: str = ""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if _command(args) == "KEYS":
            raise ValueError("KEYS in a pipeline is not namespaced")
        return super().execute_command(*namespace_command(self.key_prefix, args), **options)


class NamespacedArqRedis(ArqRedis):
    """An `ArqRedis` whose every key lives under `key_prefix` (see the module docstring)."""

    def __init__(self, *args: Any, key_prefix: str, **kwargs: Any) -> None:
        if not key_prefix:
            raise ValueError("key_prefix must not be empty")
        self.key_prefix = key_prefix
        super().__init__(*args, **kwargs)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = await super().execute_command(*namespace_command(self.key_prefix, args),
                                              **options)
        if _command(args) == "KEYS":  # names come back as arq wrote them
            return [_strip(self.key_prefix, key) for key in reply]
        return reply

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = NamespacedPipeline(self.connection_pool, self.response_callbacks, transaction,
                                  shard_hint)
        pipe.key_prefix = self.key_prefix
        return pipe
