"""Firmware packages and paced, self-halting rollout campaigns.

A package is of one of two kinds, told apart by its first bytes: a whole firmware image
("image": MicroPython with the node firmware frozen in, for a production node's A/B app slots,
``firmware/spnode/imgupdate.py``), or an archive of the application's .mpy tree ("tree":
``SPA1``, ``firmware/spnode/update.py``, for development nodes only). The controller checks it
as the node would, stores it, hashes it, and serves it under ``/firmware/``. A node refuses a
package of the other kind (with the reason in its acknowledgement). Each
update command is signed with the target node's own update key, so nothing but the controller
can make a node flash. The campaign runner (``controller.fleet.campaign_tick``, every few
seconds) dispatches at the set pace and halts the campaign by itself when the share of failed or
rolled-back nodes passes the threshold.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy import func, select

from controller import policy
from controller.api.auth import (
    DB,
    IdPath,
    Operator,
    Principal,
    Viewer,
    audit,
    forbidden,
    not_found,
)
from controller.api.deps import State
from controller.api.schemas import (
    CampaignIn,
    CampaignNodeOut,
    CampaignOut,
    CommandOut,
    PackageOut,
    RollbackIn,
)
from controller.fleet import campaign_tick, update_command
from controller.registry.models import (
    Campaign,
    CampaignNode,
    Command,
    FirmwarePackage,
    Group,
    GroupPole,
    Node,
)
from spnode.update import Unpacker, UpdateError

router = APIRouter(tags=["firmware"])
MAX_PACKAGE = 4 * 1024 * 1024
ROLLBACK_VALID_S = 1800  # a rollback command not taken within this is refused by the node
VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.]+)?$")


@router.post(
    "/api/firmware",
    response_model=PackageOut,
    status_code=201,
    summary="Upload a firmware package (version and archive)",
)
def upload(  # sync, like every route: its registry work must not run on the event loop
    state: State,
    db: DB,
    p: Operator,
    version: Annotated[str, Form(max_length=32)],
    file: Annotated[UploadFile, File()],
    notes: Annotated[str, Form(max_length=2000)] = "",
) -> FirmwarePackage:
    if not policy.manages_firmware(p):
        raise forbidden("firmware is managed by the infrastructure operator")
    if not VERSION.match(version):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "version: must look like 1.2.3 (semantic version)",
        )
    if db.scalar(select(FirmwarePackage.id).where(FirmwarePackage.version == version)):
        raise HTTPException(status.HTTP_409_CONFLICT, f"version: {version} exists")
    data = file.file.read(MAX_PACKAGE + 1)
    if len(data) > MAX_PACKAGE:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"file: larger than {MAX_PACKAGE} bytes"
        )
    kind = package_kind(data)
    try:
        if kind == "image":
            check_image(data)
        else:
            check_archive(data)
    except UpdateError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"file: {e}") from None
    folder = state.settings.data_dir / "firmware"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"streetpole-{version}.{'bin' if kind == 'image' else 'spa'}"
    (folder / name).write_bytes(data)
    pkg = FirmwarePackage(
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        url=f"{state.settings.public_url}/firmware/{name}",
        kind=kind,
        notes=notes,
        uploaded_by=p.username,
    )
    db.add(pkg)
    db.flush()
    audit(db, p, "firmware.upload", "firmware", pkg.version, sha256=pkg.sha256, size=pkg.size,
          kind=kind)  # fmt: skip
    return pkg


ESP_IMAGE = 0xE9  # the first byte of an ESP32 app image (ESP-IDF's image header)
ESP_APP_DESC = bytes.fromhex("3254cdab")  # ESP_APP_DESC_MAGIC_WORD, little-endian, at 0x20
ELF = b"\x7fELF"  # the unix port's image: the simulator's and the tests' nodes


def package_kind(data: bytes) -> str:
    """ "image" for a whole firmware image, else "tree" (an SPA1 archive, or refused as one)."""
    return "image" if data[:1] == bytes([ESP_IMAGE]) or data[:4] == ELF else "tree"


def check_image(data: bytes) -> None:
    """The header checks a node can make only once it downloaded the start: refused here
    already. (The node checks that the image is for its device; its bootloader checks the rest.)"""
    if data[:4] == ELF:
        if len(data) < 52 or data[4] not in (1, 2):
            raise UpdateError("image: not a whole ELF image")
        return
    # ESP-IDF's image header: magic, segment count, flash mode, size and speed, entry point,
    # then the extended header (24 bytes in all); the app's description (esp_app_desc_t) opens
    # the first segment, after its 8-byte header. The whole-flash firmware.bin starts with the
    # bootloader, which has none: an update carries the app alone (micropython.bin).
    if len(data) < 24 or not 1 <= data[1] <= 16:
        raise UpdateError("image: not a whole ESP32 app image")
    if data[32:36] != ESP_APP_DESC:
        raise UpdateError("image: no app description (the app alone, micropython.bin, not the "
                          "whole-flash firmware.bin)")  # fmt: skip


def check_archive(data: bytes) -> int:
    """Unpack into a scratch directory with the node's own parser (spnode.update.Unpacker),
    so the controller stores only what a node would take; returns the number of files."""
    with tempfile.TemporaryDirectory() as scratch:
        unpacker = Unpacker(scratch)
        try:
            unpacker.feed(data)
            unpacker.close()
        except UpdateError:
            with contextlib.suppress(UpdateError):
                unpacker.close()  # closes the file it was writing; the first error is the one
            raise
        files: int = unpacker.files
        if files == 0:
            raise UpdateError("archive: holds no files")
        return files


@router.post(
    "/api/nodes/{node_id}/rollback",
    response_model=CommandOut,
    status_code=202,
    summary="Put an older package on one node (a signed rollback: the node refuses any "
    "version not above the highest it has taken otherwise)",
)
def rollback(db: DB, p: Operator, node_id: IdPath, body: RollbackIn) -> Command:
    if not policy.manages_firmware(p):
        raise forbidden("firmware is managed by the infrastructure operator")
    node = db.get(Node, node_id)
    if node is None:
        raise not_found("node", node_id)
    pkg = db.get(FirmwarePackage, body.package_id)
    if pkg is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"package_id: no package {body.package_id}"
        )
    cmd = update_command(db, node, pkg, p.username, None, ROLLBACK_VALID_S, rollback=True)
    audit(db, p, "node.rollback", "node", f"{node.pole_id}/{node.node}", node.pole.owner_id,
          command=cmd.id, version=pkg.version)  # fmt: skip
    return cmd


@router.get("/api/firmware", response_model=list[PackageOut], summary="Firmware packages")
def packages(db: DB, p: Viewer) -> list[FirmwarePackage]:
    q = select(FirmwarePackage).where(policy.visible_packages(p))
    return list(db.scalars(q.order_by(FirmwarePackage.id.desc())))


@router.get(
    "/firmware/{name}",
    summary="Download a package (nodes; integrity by signed hash)",
    response_class=FileResponse,
)
def download(state: State, name: str) -> FileResponse:
    if not re.fullmatch(r"streetpole-[0-9A-Za-z.+-]+\.(spa|bin)", name):
        raise not_found("firmware file", name)
    path = state.settings.data_dir / "firmware" / name
    if not path.is_file():
        raise not_found("firmware file", name)
    return FileResponse(path, media_type="application/octet-stream")


def _campaign_out(db: DB, p: Principal, c: Campaign) -> CampaignOut:
    out = CampaignOut.model_validate(c)
    rows = db.execute(
        select(CampaignNode.state, func.count())
        .where(CampaignNode.campaign_id == c.id, policy.campaign_nodes_filter(p))
        .group_by(CampaignNode.state)
    ).all()
    out.nodes = {s: n for s, n in rows}
    return out


@router.post(
    "/api/campaigns",
    response_model=CampaignOut,
    status_code=201,
    summary="Roll a package out to a group, paced, with automatic halt",
)
def create_campaign(db: DB, p: Operator, body: CampaignIn) -> CampaignOut:
    if not policy.manages_firmware(p):
        raise forbidden("firmware is managed by the infrastructure operator")
    if db.get(FirmwarePackage, body.package_id) is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"package_id: no package {body.package_id}"
        )
    if db.get(Group, body.group_id) is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"group_id: no group {body.group_id}"
        )
    c = Campaign(**body.model_dump(), created_by=p.username)
    db.add(c)
    db.flush()
    nodes = db.scalars(
        select(Node.id)
        .join(GroupPole, GroupPole.pole_id == Node.pole_id)
        .where(GroupPole.group_id == body.group_id)
        .order_by(Node.id)
    ).all()
    if not nodes:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "group_id: the group has no provisioned nodes"
        )
    db.add_all(CampaignNode(campaign_id=c.id, node_id=n) for n in nodes)
    db.flush()
    campaign_tick(db, c, c.created_at)
    audit(db, p, "campaign.create", "campaign", c.id, nodes=len(nodes), **body.model_dump())
    return _campaign_out(db, p, c)


@router.get("/api/campaigns", response_model=list[CampaignOut], summary="Campaigns")
def campaigns(db: DB, p: Viewer) -> list[CampaignOut]:
    q = select(Campaign).where(policy.visible_campaigns(p)).order_by(Campaign.id.desc())
    return [_campaign_out(db, p, c) for c in db.scalars(q)]


def _get(db: DB, p: Principal, campaign_id: IdPath) -> Campaign:
    c = db.scalar(select(Campaign).where(Campaign.id == campaign_id, policy.visible_campaigns(p)))
    if c is None:
        raise not_found("campaign", campaign_id)
    return c


@router.get("/api/campaigns/{campaign_id}", response_model=CampaignOut, summary="One campaign")
def campaign(db: DB, p: Viewer, campaign_id: IdPath) -> CampaignOut:
    return _campaign_out(db, p, _get(db, p, campaign_id))


@router.get(
    "/api/campaigns/{campaign_id}/nodes",
    response_model=list[CampaignNodeOut],
    summary="Per-node progress",
)
def campaign_nodes(db: DB, p: Viewer, campaign_id: IdPath) -> list[CampaignNode]:
    _get(db, p, campaign_id)
    return list(
        db.scalars(
            select(CampaignNode)
            .where(CampaignNode.campaign_id == campaign_id, policy.campaign_nodes_filter(p))
            .order_by(CampaignNode.node_id)
        )
    )


def _set_state(
    db: DB, p: Operator, campaign_id: IdPath, new: str, allowed: tuple[str, ...]
) -> CampaignOut:
    c = _get(db, p, campaign_id)
    if not policy.manages_firmware(p):
        raise forbidden("firmware is managed by the infrastructure operator")
    if c.state not in allowed:
        raise HTTPException(status.HTTP_409_CONFLICT, f"campaign is {c.state}")
    c.state = new
    audit(db, p, f"campaign.{new}", "campaign", c.id)
    return _campaign_out(db, p, c)


@router.post("/api/campaigns/{campaign_id}/halt", response_model=CampaignOut, summary="Halt")
def halt(db: DB, p: Operator, campaign_id: IdPath) -> CampaignOut:
    return _set_state(db, p, campaign_id, "halted", ("running",))


@router.post(
    "/api/campaigns/{campaign_id}/resume",
    response_model=CampaignOut,
    summary="Resume a halted campaign",
)
def resume(db: DB, p: Operator, campaign_id: IdPath) -> CampaignOut:
    return _set_state(db, p, campaign_id, "running", ("halted",))


@router.post("/api/campaigns/{campaign_id}/cancel", response_model=CampaignOut, summary="Cancel")
def cancel(db: DB, p: Operator, campaign_id: IdPath) -> CampaignOut:
    return _set_state(db, p, campaign_id, "cancelled", ("running", "halted"))
