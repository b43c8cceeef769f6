"""What a Node (spnode.app) does with an incoming config or command, and with the persisted
config at boot: loaded for the message, then unloaded (spnode.unload), together with the codec
and the config checks it brought in, so none of it stays in the heap between messages."""

import json
import sys

from protocols.errors import ProtocolError
from spnode import unload

# loaded to check a message and unloaded before the next step, so the checks and what comes
# after them (applying a config, an update's download) are not in the heap at the same time;
# spnode.nodemsg itself is unloaded by the caller. Nothing here keeps a module-level reference
# to them.
_TRANSIENT = ("spnode.remoteconfig", "protocols.codec", "protocols.topics")


def _remote(node):
    """A RemoteConfig over the node's own record of the config in force (spnode.app._Remote)."""
    from spnode.remoteconfig import RemoteConfig

    r = node.remote
    rc = RemoteConfig(r.path)
    rc.config = r.config
    rc.rejected = r.rejected
    return rc


def _keep(node, rc):
    r = node.remote
    r.config = rc.config
    r.rejected = rc.rejected


def load(node):
    """At boot: the persisted config, checked, put in force."""
    try:
        rc = _remote(node)
        cfg = rc.load()
        _keep(node, rc)
        rc = None
        unload(*_TRANSIENT)
        if cfg is not None:
            apply(node, cfg)
    finally:
        unload(*_TRANSIENT)


def apply(node, cfg):
    from protocols import topics

    node.dimmer.configure(cfg, node.local.location)
    node.period_s = cfg["report_period_s"]
    nbs = []
    for nb in cfg.get("neighbours", ()):
        t = str(topics.Topic(nb["pole"], nb["node"], topics.PRESENCE))
        nbs.append(t)
        node.client.subscribe(t, 0)
    node.neighbours = tuple(nbs)
    cal = cfg.get("calibration", {})
    if node.noise is not None and "noise_offset_db" in cal:
        node.noise.set_offset(cal["noise_offset_db"])
    if node.no2 is not None and "no2_we_zero_mv" in cal:
        node.no2.calibrate(
            cal.get("no2_we_zero_mv"),
            cal.get("no2_ae_zero_mv"),
            cal.get("no2_sensitivity_mv_ppb"),
        )
    node._state_due = True


async def handle(node, topic, payload):
    try:
        if topic == node.t_config:
            _config(node, payload)
        elif topic == node.t_cmd:
            await _cmd(node, payload)
    finally:
        unload(*_TRANSIENT)


def _config(node, payload):
    old = node.remote.config
    rc = _remote(node)
    ack, changed = rc.offer(payload, node.clock.now())
    _keep(node, rc)
    rc = None
    unload(*_TRANSIENT)
    if changed:
        try:
            apply(node, node.remote.config)
        except Exception as e:  # should not pass validation; keep the old program
            if old is not None:
                apply(node, old)
            ack["status"] = "failed"
            ack["reason"] = ("apply: %s" % e)[:200]
    node._alarm("configRejected", ack["status"] != "applied", ack.get("reason"))
    node.acks += 1
    node._queue(node.t_ack, ack, "ack")


async def _cmd(node, payload):
    from protocols import codec

    try:
        cmd = codec.decode("cmd", payload)
    except ProtocolError as e:
        ident = "cmd"
        try:
            from protocols.topics import check_id

            ident = check_id(json.loads(payload)["id"])
        except Exception:
            pass
        node._ack(ident, "cmd", "rejected", str(e))
        return
    finally:
        codec = None
        unload(*_TRANSIENT)
    kind = cmd["cmd"]
    ident = cmd["id"]
    if kind in ("override", "revert"):
        node.dimmer.command(cmd)
        node.control_step()
        node._ack(ident, "cmd", "applied")
    elif kind == "reboot":
        node._ack(ident, "cmd", "applied")
        await node._flush()
        node.stop("reboot")
    elif kind == "selftest":
        new = _new("spnode.selftest")
        from spnode import selftest

        try:
            checks = selftest.run(node.board, node.bdef, out=_Null())
        finally:
            selftest = None
            unload(*new)
        node._ack(ident, "cmd", "applied", checks=checks)
    elif kind == "update":
        new = _new("spnode.update", "spnode.httpget")
        try:
            await _update(node, cmd)
        finally:
            unload(*new)


def _new(*names):
    """Those of the modules not loaded yet (to unload after use; one already loaded, e.g. the
    updater main.py keeps for the probation check, stays: its classes are in use)."""
    return [n for n in names if n not in sys.modules]


async def _update(node, cmd):
    from spnode import httpget, update

    ident = cmd["id"]
    up = node.updater
    if up is None:
        if node.data_dir is None:
            node._ack(ident, "cmd", "rejected", "update: no flash storage on this node")
            return
        up = update.Updater(node.data_dir, version=node.fw)  # not kept: not on probation
    try:
        inst = up.begin(cmd, node.local.update_key)
    except update.UpdateError as e:
        node._ack(ident, "cmd", "rejected", str(e))
        return
    node._ack(ident, "cmd", "accepted")
    try:
        for attempt in range(3):
            try:
                await httpget.get(cmd["url"], inst.feed, inst.got, cmd["size"])
                break
            except OSError as e:
                if attempt == 2:
                    why = "url: download failed at %d: %s" % (inst.got, e)
                    raise update.UpdateError(why) from None
        inst.finish()
    except Exception as e:
        inst.abort()
        reason = str(e) if isinstance(e, update.UpdateError) else "update: %r" % e
        node._alarm("updateFailed", True, reason)
        node._ack(ident, "cmd", "failed", reason)
        return
    node._ack(ident, "cmd", "applied")
    await node._flush()
    node.stop("reboot")  # boot swaps the staged version in, on probation


class _Null:
    def write(self, s):
        pass
