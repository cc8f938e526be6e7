"""The event catalogue (/asyncapi.json) and the OpenAPI document, validated by the parsers
integrators use: the official AsyncAPI parser (npm) and openapi-spec-validator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from openapi_spec_validator import validate

from app.core.outbox import REFRESH_PRIORITY
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
PARSER = "@asyncapi/parser@3.6.6"
TOOLS = ROOT / ".cache" / "npm-tools"  # gitignored; npm caches the download


async def test_catalogue_lists_every_event_and_channel(client):
    response = await client.get("/asyncapi.json")
    assert response.status_code == 200
    document = response.json()
    messages = document["components"]["messages"]
    inbound = {"user.upserted", "mission.submitted", "habit.streak_broken", "goal.overdue",
               "readiness.updated"}
    assert inbound | set(REFRESH_PRIORITY) | {"snapshot"} == set(messages)
    channels = document["channels"]
    assert channels["inboundEvents"]["address"] == "/api/v1/events"
    assert channels["mentorStream"]["address"] == "/api/v1/mentor/dashboard/stream"
    assert set(channels["webhooks"]["messages"]) == set(REFRESH_PRIORITY)
    # Payloads come from the models the code validates with.
    schemas = document["components"]["schemas"]
    upserted = schemas["UserUpserted"]
    assert upserted["properties"]["data"] == {"$ref": "#/components/schemas/UserUpsertData"}


async def test_every_event_type_has_its_own_typed_payload(client):
    """Inbound and outbound, each type's payload pins `type` and has its own `data` schema
    with named fields (never a generic object)."""
    document = (await client.get("/asyncapi.json")).json()
    schemas = document["components"]["schemas"]
    data_refs = set()
    for name, message in document["components"]["messages"].items():
        if name == "snapshot":
            continue
        payload = schemas[message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert payload["properties"]["type"]["const"] == name, name
        data_ref = payload["properties"]["data"]["$ref"]
        data = schemas[data_ref.rsplit("/", 1)[1]]
        assert data.get("properties") and data.get("required"), name
        data_refs.add(data_ref)
    assert len(data_refs) >= len(REFRESH_PRIORITY)  # session.scheduled/completed share one
    cancelled = schemas["SessionCancelledData"]
    assert {"session_id", "reason", "cancelled_by", "sequence"} <= set(cancelled["properties"])
    assert cancelled["additionalProperties"] is False


async def test_asyncapi_parser_accepts_the_catalogue(client, tmp_path):
    npm = require_tool("npm")
    require_tool("node")
    document = (await client.get("/asyncapi.json")).json()
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document))
    _parse_with_the_official_parser(npm, path)


def _parse_with_the_official_parser(npm: str, path: Path) -> None:
    if not (TOOLS / "node_modules" / "@asyncapi" / "parser").exists():
        subprocess.run([npm, "install", "--prefix", str(TOOLS), "--no-audit", "--no-fund",
                        PARSER], check=True, capture_output=True, timeout=600)
    script = TOOLS / "validate.mjs"
    script.write_text((Path(__file__).parent / "asyncapi_validate.mjs").read_text())
    result = subprocess.run(["node", str(script), str(path)], capture_output=True, text=True,
                            timeout=120, cwd=TOOLS)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "valid AsyncAPI 3.0.0" in result.stdout


async def test_openapi_document_is_valid_and_describes_webhooks(client):
    spec = (await client.get("/openapi.json")).json()
    validate(spec)  # raises with the first error
    webhook = spec["webhooks"]["outbound-event"]["post"]
    body = webhook["requestBody"]["content"]["application/json"]["schema"]
    assert body["discriminator"]["propertyName"] == "type"
    assert set(body["discriminator"]["mapping"]) == set(REFRESH_PRIORITY)
    assert body["discriminator"]["mapping"]["flag.raised"] == (
        "#/components/schemas/FlagRaisedEvent")
    assert "/asyncapi.json" in spec["info"]["description"]
