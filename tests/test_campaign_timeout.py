"""A campaign ends even when a node never answers its update command (fleet.campaign_tick).

A node that was sent the command but stays silent (offline, or its broker session lost the
message) used to stay "pending" for ever, so the campaign never completed or halted."""

from __future__ import annotations

from pathlib import Path

from controller.fleet import campaign_tick
from controller.registry.db import Registry, migrate
from controller.registry.models import Campaign, CampaignNode, FirmwarePackage, Group
from tests.harness.api import prefill_nodes

TIMEOUT_S = 600


def _campaign(tmp_path: Path, nodes: int) -> Registry:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate(url)
    prefill_nodes(url, nodes)
    reg = Registry(url)
    with reg.session() as db:
        pkg = FirmwarePackage(
            version="0.2.0", sha256="0" * 64, size=1, url="http://x/fw.spa", uploaded_by="admin"
        )
        group = Group(name="rollout")
        db.add_all([pkg, group])
        db.flush()
        camp = Campaign(
            package_id=pkg.id,
            group_id=group.id,
            nodes_per_minute=600.0,
            failure_threshold=0.5,
            min_finished=1,
            timeout_s=TIMEOUT_S,
            created_by="admin",
            created_at=0.0,
        )
        db.add(camp)
        db.flush()
        db.add_all(CampaignNode(campaign_id=camp.id, node_id=i + 1) for i in range(nodes))
    return reg


def _tick(reg: Registry, now: float) -> tuple[str, list[tuple[str, str | None]]]:
    with reg.session() as db:
        camp = db.get(Campaign, 1)
        assert camp is not None
        campaign_tick(db, camp, now)
        members = db.query(CampaignNode).order_by(CampaignNode.node_id).all()
        return camp.state, [(cn.state, cn.reason) for cn in members]


def test_a_node_that_never_answers_fails_after_the_timeout_and_the_campaign_ends(
    tmp_path: Path,
) -> None:
    reg = _campaign(tmp_path, 2)
    try:
        state, members = _tick(reg, 1.0)  # both commands go out
        assert state == "running" and [m[0] for m in members] == ["pending", "pending"]
        with reg.session() as db:  # the first node updates; the second never answers
            first = db.query(CampaignNode).filter_by(node_id=1).one()
            first.state = "updated"
        state, members = _tick(reg, 1.0 + TIMEOUT_S - 1)  # not yet past its timeout
        assert state == "running" and members[1][0] == "pending"
        state, members = _tick(reg, 1.0 + TIMEOUT_S + 1)
        assert members[1] == ("failed", "no report within the timeout")
        assert state == "completed"  # one of two failed: under the 50% threshold
    finally:
        reg.close()


def test_a_node_never_sent_its_command_is_not_timed_out(tmp_path: Path) -> None:
    """Pacing keeps some members undispatched: only what was sent can time out."""
    reg = _campaign(tmp_path, 3)
    try:
        with reg.session() as db:
            camp = db.get(Campaign, 1)
            assert camp is not None
            camp.nodes_per_minute = 0.0  # one command at the start, then no more
            camp.min_finished = 3  # one failure alone does not halt it
        _tick(reg, 1.0)
        state, members = _tick(reg, 1.0 + 10 * TIMEOUT_S)
        assert [m[0] for m in members] == ["failed", "pending", "pending"]
        assert state == "running"
    finally:
        reg.close()
