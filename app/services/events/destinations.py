"""Where webhooks may go: no server-side request forgery through an endpoint URL.

An admin registers URLs and the delivery worker POSTs to them from inside our network, so a
URL naming an internal address would turn the worker into a proxy (cloud metadata
credentials, internal services, a port scanner). The rules, applied to every address a
URL's host is or resolves to:
- always refused: link-local (169.254/16, fe80::/10, where cloud metadata lives), the
  cloud metadata addresses outside it (AWS fd00:ec2::254, Alibaba 100.100.100.200, Azure
  168.63.129.16, Oracle 192.0.0.192), "this host" (0.0.0.0/8, ::), multicast, reserved and
  broadcast; and the metadata host names (`metadata.google.internal`, ...) by name;
- refused unless `WEBHOOK_ALLOW_PRIVATE` (default: only in development): loopback, private
  and every other non-global range (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7,
  ...), `localhost`, single-label names (they resolve through search domains to internal
  hosts) and internal suffixes (`.internal`, `.local`, `.lan`, `.home.arpa`);
- an IPv6 address carrying an IPv4 one (mapped `::ffff:a.b.c.d`, compatible, 6to4, Teredo,
  NAT64 64:ff9b::/96) is judged by both, the stricter wins. Numeric spellings (`127.1`,
  `2130706433`, `0x7f000001`, octal) are normalised by the URL parser at registration and
  by the resolver at delivery, so they are judged as the address they are.

At registration (422 `webhook_url_not_allowed`) a literal address is judged at once and a
name is resolved (bounded by a short timeout); a name that does not resolve yet is
accepted and judged at each delivery. At delivery the worker's HTTP client resolves the
host itself, judges every address and connects to the vetted address (`VettingBackend`),
so a name re-pointed after the check (DNS rebinding) cannot reach an internal address; TLS
SNI, certificate verification and `Host` still use the URL's name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Literal

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Verdict = Literal["public", "private", "refused"]

_REFUSED_NETWORKS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    "100.100.100.200/32", "168.63.129.16/32", "192.0.0.192/32",
    "::/128", "fe80::/10", "ff00::/8", "fd00:ec2::254/128",
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
METADATA_NAMES = frozenset({
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data",
    "instance-data.ec2.internal", "metadata.tencentyun.com",
})
_INTERNAL_SUFFIXES = (".localhost", ".internal", ".local", ".lan", ".home.arpa")
_RANK = {"public": 0, "private": 1, "refused": 2}


class DestinationRefused(Exception):
    """The URL's host is, or resolves to, an address webhooks may not reach."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [v for v in (address.ipv4_mapped, address.sixtofour) if v is not None]
    if address.teredo:
        found.extend(address.teredo)
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _judge_one(address: IPAddress) -> Verdict:
    if any(address in network for network in _REFUSED_NETWORKS if
           network.version == address.version):
        return "refused"
    return "public" if address.is_global else "private"


def judge_address(address: IPAddress) -> Verdict:
    """The stricter verdict of the address and of any IPv4 address it carries."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        candidates.extend(_embedded_ipv4(address))
    return max((_judge_one(a) for a in candidates), key=_RANK.__getitem__)


def judge_name(host: str) -> Verdict:
    """A host name's own verdict, before any resolution."""
    name = host.lower().rstrip(".")
    if name in METADATA_NAMES:
        return "refused"
    if name == "localhost" or "." not in name or name.endswith(_INTERNAL_SUFFIXES):
        return "private"
    return "public"


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _verdict_reason(verdict: Verdict) -> str:
    return ("a link-local or cloud metadata address" if verdict == "refused"
            else "a loopback or private address")


def _check(verdicts: Iterable[Verdict], *, allow_private: bool) -> None:
    worst = max(verdicts, key=_RANK.__getitem__, default="public")
    if worst == "refused" or (worst == "private" and not allow_private):
        raise DestinationRefused(_verdict_reason(worst))


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host` (which may be a numeric form)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _, _, _, _, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def vetted_addresses(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to for `host`, or DestinationRefused. A name is refused if
    any of its addresses is (a mix of public and internal ones is a rebinding trick)."""
    if (literal := literal_address(host)) is not None:
        _check([judge_address(literal)], allow_private=allow_private)
        return [literal]
    _check([judge_name(host)], allow_private=allow_private)
    addresses = await resolve(host, port)
    _check((judge_address(a) for a in addresses), allow_private=allow_private)
    return addresses


async def check_url(url: str, *, allow_private: bool, resolve_timeout: float = 2.0) -> None:
    """Registration: DestinationRefused if the URL may not receive webhooks. A name that
    does not resolve now is let through: every delivery checks it again."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DestinationRefused("not an http(s) URL with a host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        async with asyncio.timeout(resolve_timeout):
            await vetted_addresses(parsed.host, port, allow_private=allow_private)
    except (OSError, TimeoutError):  # socket.gaierror is an OSError
        return


class VettingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to vetted addresses: the name is
    resolved here, once, and the socket opened to the address that was judged."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int,
                          timeout: float | None = None,  # noqa: ASYNC109 (httpcore's API)
                          local_address: str | None = None,
                          socket_options: Iterable[tuple] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await vetted_addresses(host, port, allow_private=self.allow_private)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve host: {exc}") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError("no address")

    async def connect_unix_socket(self, path: str,
                                  timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[tuple] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("unix sockets are not webhook destinations")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class VettedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose every connection is vetted; no
    proxy from the environment, no unix socket."""

    def __init__(self, *, allow_private: bool, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(trust_env=False, verify=verify)
        # The pool httpx built, rebuilt with our network backend (httpx has no parameter
        # for it; the pool is what handle_async_request uses).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            network_backend=VettingBackend(allow_private=allow_private),
        )
