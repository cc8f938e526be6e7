"""No SSRF through webhook URLs (finding F2): refused at registration, checked again on the
resolved address at delivery, the socket opened to the vetted address (TLS and `Host`
still name the host), and no port-scan detail in the delivery log."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl

import httpx
import pytest
import trustme
import uvicorn
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.main import create_app
from app.services.events import destinations
from app.services.events.destinations import (
    DestinationRefused,
    VettedTransport,
    check_url,
    judge_address,
)
from app.services.events.webhooks import NO_RESPONSE, http_client, send
from tests.events.test_events_webhooks import (
    ADMIN_URL,
    deliver_ours,
    delivery,
    emit_and_relay,
)
from tests.support.live import free_port

LINK_LOCAL_OR_METADATA = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.google.internal./",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://0.0.0.0/", "http://0/", "http://[::]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://224.0.0.1/", "http://255.255.255.255/",
]
LOOPBACK_OR_PRIVATE = [
    "http://127.0.0.1/", "http://127.1/", "http://2130706433/", "http://0x7f000001/",
    "http://017700000001/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://[::127.0.0.1]/", "http://[2002:7f00:1::]/",  # compatible, 6to4
    "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://[fd00::1]/", "http://localhost:8000/", "http://api.localhost/",
    "http:///nohost", "https://intranet/", "https://db.internal/", "http://printer.local/",
]


@pytest.mark.parametrize("url", LINK_LOCAL_OR_METADATA)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_link_local_and_metadata_are_always_refused(url, allow_private):
    with pytest.raises(DestinationRefused, match="link-local or cloud metadata"):
        await check_url(url_as_registered(url), allow_private=allow_private)


@pytest.mark.parametrize("url", LOOPBACK_OR_PRIVATE)
async def test_loopback_and_private_are_refused_unless_allowed(url):
    with pytest.raises(DestinationRefused, match="loopback or private"):
        await check_url(url_as_registered(url), allow_private=False)
    await check_url(url_as_registered(url), allow_private=True)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "1.1.1.1"])
def test_public_addresses_pass(address):
    assert judge_address(ipaddress.ip_address(address)) == "public"


def url_as_registered(url: str) -> str:
    """The URL as the schema stores it (pydantic normalises numeric IPv4 spellings)."""
    from pydantic import HttpUrl, TypeAdapter

    return str(TypeAdapter(HttpUrl).validate_python(url))


# --- registration (the admin route) ---------------------------------------------------------

@pytest.fixture(scope="module")
async def strict_client(settings):
    """An app as deployed: private destinations not allowed."""
    application = create_app(settings.model_copy(update={"webhook_allow_private": False}))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://2130706433/",
                                 "http://[::ffff:127.0.0.1]/", "http://0x7f000001/hook",
                                 "http://127.1/", "http://[fd00::1]/", "http://[fe80::1]/",
                                 "http://metadata.google.internal/", "http:///nohost",
                                 "http://0.0.0.0/", "http://10.0.0.1/"])
async def test_registration_refuses_internal_destinations(strict_client, admin, url):
    response = await strict_client.post(ADMIN_URL, json={"url": url}, headers=admin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "webhook_url_not_allowed"


async def test_registration_refuses_metadata_even_where_private_is_allowed(client, admin):
    assert client  # the test app: WEBHOOK_ALLOW_PRIVATE=true
    for url in ("http://169.254.169.254/", "http://[fe80::1]/",
                "http://metadata.google.internal/"):
        response = await client.post(ADMIN_URL, json={"url": url}, headers=admin)
        assert response.json()["code"] == "webhook_url_not_allowed", url


async def test_registration_accepts_a_public_literal(strict_client, admin):
    response = await strict_client.post(ADMIN_URL, json={"url": "https://93.184.216.34/in"},
                                        headers=admin)
    assert response.status_code == 201, response.text
    deleted = await strict_client.delete(f"{ADMIN_URL}/{response.json()['id']}", headers=admin)
    assert deleted.status_code == 204


# --- delivery ---------------------------------------------------------------------------------

class HostRecorder:
    """A receiver that records the Host header and the TLS server name it was asked for."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.port = free_port()
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        self.hosts.append(request.headers["host"])
        return Response(status_code=204)


@pytest.fixture
async def https_receiver():
    """An HTTPS receiver on 127.0.0.1 whose certificate names hooks.example.com only."""
    authority = trustme.CA()
    certificate = authority.issue_cert("hooks.example.com")
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_ssl)
    receiver = HostRecorder()
    config = uvicorn.Config(receiver.app, host="127.0.0.1", port=receiver.port,
                            log_level="warning", lifespan="off")
    config.load()
    config.ssl = server_ssl
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "receiver failed to start"
        await asyncio.sleep(0.01)
    client_ssl = ssl.create_default_context()
    authority.configure_trust(client_ssl)
    yield receiver, client_ssl
    server.should_exit = True
    await task


@pytest.fixture
def dns(monkeypatch):
    """The resolver's answers for names the test owns (no DNS server of ours to point);
    counts lookups."""
    answers: dict[str, list[str]] = {}
    lookups: list[str] = []
    real = destinations.resolve

    async def resolve(host: str, port: int):
        if host in answers:
            lookups.append(host)
            return [ipaddress.ip_address(a) for a in answers[host]]
        return await real(host, port)

    monkeypatch.setattr(destinations, "resolve", resolve)
    return answers, lookups


async def post(client: httpx.AsyncClient, url: str, settings):
    return await send(client, url=url, body=b"{}", headers={"content-type": "application/json"},
                      settings=settings)


async def test_delivery_connects_to_the_vetted_address_keeping_tls_and_host(
        https_receiver, dns, settings):
    receiver, client_ssl = https_receiver
    answers, lookups = dns
    answers["hooks.example.com"] = ["127.0.0.1"]
    url = f"https://hooks.example.com:{receiver.port}/hook"
    async with httpx.AsyncClient(transport=VettedTransport(allow_private=True,
                                                           verify=client_ssl)) as http:
        outcome = await post(http, url, settings)
    # The certificate names hooks.example.com only: verified against the name, not the IP.
    assert outcome.status_code == 204, outcome.detail
    assert receiver.hosts == [f"hooks.example.com:{receiver.port}"]
    assert lookups == ["hooks.example.com"]  # resolved once, by the vetting backend


async def test_a_name_rebound_to_an_internal_address_is_refused_at_delivery(
        https_receiver, dns, settings):
    """Public when registered, loopback by the time of delivery (DNS rebinding)."""
    receiver, client_ssl = https_receiver
    answers, _ = dns
    url = f"https://hooks.example.com:{receiver.port}/hook"
    answers["hooks.example.com"] = ["93.184.216.34"]
    await check_url(url, allow_private=False)  # registration passes
    for internal in (["127.0.0.1"], ["93.184.216.34", "10.1.2.3"], ["169.254.169.254"]):
        answers["hooks.example.com"] = internal
        async with httpx.AsyncClient(transport=VettedTransport(allow_private=False,
                                                               verify=client_ssl)) as http:
            outcome = await post(http, url, settings)
        assert outcome.status_code is None
        assert outcome.error.startswith("destination not allowed"), internal
    assert receiver.hosts == []


@pytest.mark.parametrize("url", ["http://127.1:{port}/hook", "http://2130706433:{port}/hook",
                                 "http://0x7f000001:{port}/hook",
                                 "http://[::ffff:127.0.0.1]:{port}/hook",
                                 "http://localhost:{port}/hook", "http://0.0.0.0:{port}/hook"])
async def test_every_loopback_spelling_is_refused_at_delivery(https_receiver, settings, url):
    """Stored before the check existed (or by hand): the delivery refuses it anyway, even
    in spellings the URL parser never normalised."""
    receiver, _ = https_receiver
    strict = settings.model_copy(update={"webhook_allow_private": False})
    async with http_client(strict) as http:
        outcome = await post(http, url.format(port=receiver.port), strict)
    assert outcome.status_code is None and outcome.error.startswith("destination not allowed")
    assert receiver.hosts == []


async def test_the_delivery_log_is_no_port_scanner(
        client, admin, factory, system_db, redis, settings, endpoints, https_receiver):
    """A closed port, an open port that speaks TLS to a plain-HTTP client, and an open port
    that never answers look the same in the delivery log (the worker's log has the
    detail)."""
    receiver, _ = https_receiver
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    urls = [f"http://127.0.0.1:{free_port()}/x",  # closed
            f"http://127.0.0.1:{receiver.port}/hook",  # open, not plain HTTP
            f"http://127.0.0.1:{silent_port}/x"]  # open, silent
    created = [await endpoints(url) for url in urls]
    event_id = await emit_and_relay(factory, system_db, redis, settings)
    fast = settings.model_copy(update={"webhook_timeout_seconds": 1.0})
    try:
        async with http_client(fast) as http:
            await deliver_ours(system_db, http, fast, *(e["id"] for e in created))
    finally:
        silent.close()
    errors = set()
    for endpoint in created:
        row = await delivery(system_db, event_id, endpoint["id"])
        errors.add((row.last_status_code, row.last_error))
        page = (await client.get(f"{ADMIN_URL}/{endpoint['id']}/deliveries",
                                 headers=admin)).json()
        assert page["items"][0]["attempt_log"][0]["error"] == NO_RESPONSE
    assert errors == {(None, NO_RESPONSE)}
