"""Saved packets: `packet save|list|show`."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, Field

from dispatchsite.core.errors import NotFoundError
from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, OpOutput, define_op
from lanes.ops.schemas import READ, WRITE
from workspaces.models import Packet
from workspaces.packets import packet_read_dir
from workspaces.services.packets import packet_save


class PacketFileOut(BaseModel):
    slot: str
    path: str
    bytes: int
    sha256: str
    text: str | None = None


class PacketOut(OpOutput):
    name: str
    version: int
    versions: int
    source_dir: str | None
    unknown_files: list[str]
    created_at: str
    files: list[PacketFileOut]


def packet_view(packet: Packet, *, text: bool = False) -> dict[str, Any]:
    return {
        "name": packet.name,
        "version": packet.version,
        "versions": Packet.objects.filter(name=packet.name).count(),
        "source_dir": packet.source_dir or None,
        "unknown_files": list(packet.unknown_files or []),
        "created_at": packet.created_at.isoformat(),
        "files": [
            {
                "slot": f.slot,
                "path": f.path,
                "bytes": f.bytes,
                "sha256": f.sha256,
                **({"text": f.text} if text else {}),
            }
            for f in packet.files.order_by("path")
        ],
    }


class SaveIn(OpInput):
    name: str = Field(description="packet name; saving again makes a new version")
    dir: str = Field(
        description="the packet folder to read", json_schema_extra={"cli_path": True}
    )


@define_op(
    id="packet_save",
    summary="save a packet folder under a name (a new version when it changed)",
    intent="write",
    idempotent=True,
    input=SaveIn,
    output=PacketOut,
    cli="packet save",
    positionals=("name", "dir"),
    http=("POST", "/packets"),
    mcp_tool=WRITE,
    mcp_action="packet_save",
)
def save(data: SaveIn, origin: Origin) -> dict[str, Any]:
    content = packet_read_dir(os.path.abspath(data.dir))
    return packet_view(packet_save(name=data.name, content=content, origin=origin))


class ListIn(OpInput):
    pass


class PacketListOut(OpOutput):
    packets: list[PacketOut]


@define_op(
    id="packet_list",
    summary="list saved packets (latest version of each)",
    intent="read",
    idempotent=True,
    input=ListIn,
    output=PacketListOut,
    cli="packet list",
    http=("GET", "/packets"),
    mcp_tool=READ,
    mcp_action="packet_list",
)
def packet_list(data: ListIn, origin: Origin) -> dict[str, Any]:
    latest: dict[str, Packet] = {}
    for packet in Packet.objects.exclude(name="").order_by("name", "-version"):
        latest.setdefault(packet.name, packet)
    return {"packets": [packet_view(p) for p in latest.values()]}


class ShowIn(OpInput):
    name: str = Field(description="packet NAME, or NAME@vN for one version")


@define_op(
    id="packet_show",
    summary="show a saved packet: its files with their text",
    intent="read",
    idempotent=True,
    input=ShowIn,
    output=PacketOut,
    cli="packet show",
    positionals=("name",),
    http=("GET", "/packets/{name}"),
    mcp_tool=READ,
    mcp_action="packet_show",
)
def show(data: ShowIn, origin: Origin) -> dict[str, Any]:
    packet = Packet.objects.saved(data.name)
    if packet is None:
        raise NotFoundError(
            f"no saved packet {data.name!r}", hint="see `dispatch packet list`"
        )
    return packet_view(packet, text=True)
