"""Saving packets: every launched packet becomes rows; named ones are versioned."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Max

from dispatchsite.core.errors import DispatchError, ValidationError
from dispatchsite.core.origin import Origin
from lanes.services.audit import audit_record
from workspaces.models import Packet, PacketFile
from workspaces.packets import PacketContent, packet_files_from_rows, packet_validate

NAME_MAX = 200


def packet_record(
    *, content: PacketContent, name: str = "", version: int = 1
) -> Packet:
    """Rows for one packet version, exactly the bytes that were read."""
    packet = Packet.objects.create(
        name=name,
        version=version,
        source_dir=content.source_dir,
        unknown_files=content.unknown_files,
    )
    PacketFile.objects.bulk_create(
        PacketFile(
            packet=packet,
            slot=f.slot,
            path=f.path,
            bytes=f.bytes,
            sha256=f.sha256,
            text=f.text,
        )
        for f in content.files
    )
    return packet


def clean_packet_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > NAME_MAX or "/" in cleaned or "@" in cleaned:
        raise ValidationError(
            f"packet name {name!r} must be 1-{NAME_MAX} characters without '/' or '@'",
            hint="choose a plain name such as review-pr",
        )
    if cleaned.startswith("."):
        raise ValidationError(
            f"packet name {name!r} must not start with '.'", hint="choose another name"
        )
    return cleaned


def same_files(packet: Packet, content: PacketContent) -> bool:
    saved = packet_files_from_rows(packet)
    return sorted((f.path, f.slot, f.sha256) for f in saved.files) == sorted(
        (f.path, f.slot, f.sha256) for f in content.files
    )


def packet_save(*, name: str, content: PacketContent, origin: Origin) -> Packet:
    """A new version of `name` (or the latest one, when nothing changed)."""
    name = clean_packet_name(name)
    packet_validate(content)
    for _attempt in range(3):
        latest = Packet.objects.filter(name=name).order_by("-version").first()
        if latest is not None and same_files(latest, content):
            return latest
        top = Packet.objects.filter(name=name).aggregate(top=Max("version"))["top"]
        try:
            with transaction.atomic():
                packet = packet_record(
                    content=content, name=name, version=(top or 0) + 1
                )
                audit_record(
                    op="packet save",
                    detail=f"{name} v{packet.version}",
                    origin=origin,
                )
            return packet
        except IntegrityError:
            continue  # another save took that version number; take the next
    raise DispatchError(f"could not save packet {name!r}")
