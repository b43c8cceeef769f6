"""Nodes: provisioning with per-node MQTT credentials, their configs and commands."""

from __future__ import annotations

import datetime as dt
import secrets
import time

from fastapi import APIRouter, HTTPException
from fastapi import status as http
from sqlalchemy import select

from controller import policy
from controller.api.auth import (
    DB,
    IdPath,
    Operator,
    Principal,
    Technician,
    Viewer,
    audit,
    forbidden,
    not_found,
)
from controller.api.deps import State
from controller.api.routes.registry import get_pole
from controller.api.schemas import (
    CommandIn,
    CommandOut,
    ConfigStatus,
    Credentials,
    NodeIn,
    NodeOut,
)
from controller.fleet import issue_command, push_config
from controller.mqtt_auth import generate_secret, hash_password, node_username
from controller.registry.models import Command, Node, NodeConfig
from controller.state import AppState

router = APIRouter(prefix="/api/nodes", tags=["nodes"])


def get_node(db: DB, p: Principal, node_id: IdPath) -> Node:
    node = db.get(Node, node_id)
    if node is None or not policy.sees_node(p, node):
        raise not_found("node", node_id)
    return node


@router.get("", response_model=list[NodeOut], summary="Nodes on the poles you own")
def list_nodes(db: DB, p: Viewer, pole: str | None = None, status: str | None = None) -> list[Node]:
    q = select(Node).order_by(Node.id)
    poles = policy.node_poles(p)
    if poles is not None:
        q = q.where(Node.pole_id.in_(poles))
    if pole is not None:
        q = q.where(Node.pole_id == pole)
    if status is not None:
        q = q.where(Node.status == status)
    return list(db.scalars(q))


@router.post(
    "",
    response_model=Credentials,
    status_code=201,
    summary="Provision a node: its MQTT credentials and update key, shown once",
)
def provision(db: DB, state: State, p: Technician, body: NodeIn) -> Credentials:
    pole = get_pole(db, p, body.pole)
    if not policy.owns_pole(p, pole):
        raise forbidden("only the pole's owner can provision its nodes")
    node = db.scalar(select(Node).where(Node.pole_id == pole.id, Node.node == body.node))
    if body.hardware_id is not None:
        other = db.scalar(select(Node).where(Node.hardware_id == body.hardware_id))
        if other is not None and other is not node:
            raise HTTPException(
                http.HTTP_409_CONFLICT,
                f"hardware_id: already provisioned as {other.pole_id}/{other.node}",
            )
    if node is not None and not body.replace:
        refuse_if_in_service(state, node)
    password = generate_secret()
    pw_hash = hash_password(password)
    username = node_username(pole.id, body.node)
    action = "node.reprovision" if node is not None else "node.provision"
    if node is None:
        node = Node(pole_id=pole.id, node=body.node, mqtt_username=username)
        db.add(node)
    # a new key every time: whoever read the old one (a node.json on a replaced board, an old
    # record) can sign nothing for this node any more
    node.update_key = secrets.token_hex(32)
    node.hardware_id = body.hardware_id
    node.board = body.board
    node.mqtt_password_hash = pw_hash
    node.provisioned_at = time.time()
    db.flush()
    db.refresh(node)
    push_config(db, node, force=True)
    audit(
        db,
        p,
        action,
        "node",
        f"{pole.id}/{body.node}",
        pole.owner_id,
        hardware_id=body.hardware_id,
        board=body.board,
        replace=body.replace,
    )
    out = Credentials(
        node=NodeOut.model_validate(node),
        mqtt_username=username,
        mqtt_password=password,
        update_key=node.update_key,
        broker_url=state.settings.node_broker_url,
        broker_ca=state.settings.node_ca_pem,
        broker_server_name=state.settings.node_tls_server_name,
    )
    # The registry first; then wait, holding no write lock, until the broker has the password.
    db.commit()
    state.accounts.set_node(pole.id, body.node, pw_hash)
    return out


def refuse_if_in_service(state: AppState, node: Node) -> None:
    """409 if the node was heard within ``reprovision_guard_s``: new credentials would take a
    working node off the broker (a second commissioning, or a neighbouring pole's id typed)."""
    last = max(node.last_seen or 0.0, state.heard.pending((node.pole_id, node.node)) or 0.0)
    ago = time.time() - last
    if last and ago < state.settings.reprovision_guard_s:
        when = dt.datetime.fromtimestamp(last, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        raise HTTPException(
            http.HTTP_409_CONFLICT,
            f"node {node.pole_id}/{node.node} was last heard {max(ago, 0):.0f} s ago "
            f"({when} UTC) and is in service: provisioning it again would take it off the "
            "broker; check the pole id, or set replace to replace it on purpose",
        )


@router.get("/{node_id}", response_model=NodeOut, summary="One node")
def read_node(db: DB, p: Viewer, node_id: IdPath) -> Node:
    return get_node(db, p, node_id)


@router.delete(
    "/{node_id}", status_code=204, summary="Remove a node (operator); its credentials stop working"
)
def remove_node(db: DB, state: State, p: Operator, node_id: IdPath) -> None:
    node = get_node(db, p, node_id)
    pole, name = node.pole_id, node.node
    audit(db, p, "node.remove", "node", f"{pole}/{name}", node.pole.owner_id)
    db.delete(node)
    db.commit()  # then wait, holding no write lock, until the broker refuses the node
    state.accounts.remove_node(pole, name)


@router.get(
    "/{node_id}/configs",
    response_model=list[ConfigStatus],
    summary="Config versions pushed to the node and what it said",
)
def configs(db: DB, p: Viewer, node_id: IdPath) -> list[NodeConfig]:
    node = get_node(db, p, node_id)
    return list(
        db.scalars(
            select(NodeConfig)
            .where(NodeConfig.node_id == node.id)
            .order_by(NodeConfig.version.desc())
            .limit(50)
        )
    )


@router.get("/{node_id}/config", summary="The config last pushed to the node")
def current_config(db: DB, p: Viewer, node_id: IdPath) -> dict[str, object]:
    node = get_node(db, p, node_id)
    row = db.scalar(
        select(NodeConfig)
        .where(NodeConfig.node_id == node.id)
        .order_by(NodeConfig.version.desc())
        .limit(1)
    )
    if row is None:
        raise not_found("config of node", node_id)
    return row.payload


@router.post(
    "/{node_id}/config",
    response_model=ConfigStatus | None,
    summary="Push the config again (a new version)",
)
def repush(db: DB, p: Operator, node_id: IdPath) -> NodeConfig | None:
    node = get_node(db, p, node_id)
    row = push_config(db, node, force=True)
    db.flush()  # the row's defaults (status, pushed_at) for the answer
    audit(db, p, "node.config_push", "node", f"{node.pole_id}/{node.node}", node.pole.owner_id)
    return row


@router.post(
    "/{node_id}/commands",
    response_model=CommandOut,
    status_code=202,
    summary="Reboot, self-test or revert a node",
)
def command(db: DB, p: Technician, node_id: IdPath, body: CommandIn) -> Command:
    node = get_node(db, p, node_id)
    if not policy.commands_node(p, node, body.cmd):
        raise forbidden("you do not own this pole's lighting")
    cmd = issue_command(db, node, body.cmd, p.username)
    db.flush()  # the row's defaults (status, created_at) for the answer
    audit(
        db,
        p,
        f"node.{body.cmd}",
        "node",
        f"{node.pole_id}/{node.node}",
        node.pole.owner_id,
        command=cmd.id,
    )
    return cmd


@router.get("/{node_id}/commands", response_model=list[CommandOut], summary="Commands sent")
def list_commands(db: DB, p: Viewer, node_id: IdPath) -> list[Command]:
    node = get_node(db, p, node_id)
    return list(
        db.scalars(
            select(Command)
            .where(Command.node_id == node.id)
            .order_by(Command.created_at.desc())
            .limit(100)
        )
    )
