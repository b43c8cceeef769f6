"""What a Node (spnode.app) does with an incoming command: loaded for the message, then
unloaded (spnode.unload), together with the protocol checks it brought in."""

import json
import sys

from protocols.errors import ProtocolError
from spnode import unload

_TRANSIENT = ("protocols.incoming", "protocols.topics")


async def handle(node, topic, payload):
    try:
        await _cmd(node, payload)
    finally:
        unload(*_TRANSIENT)


async def _cmd(node, payload):
    from protocols.incoming import decode

    try:
        cmd = decode("cmd", payload)
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
        decode = None
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
        new = _new("spnode.updsig")
        try:
            from spnode.updsig import UpdateError, verify_command

            try:  # first, so a spoofed command loads nothing more
                verify_command(cmd, node.local.update_key)
            except UpdateError as e:
                node._ack(ident, "cmd", "rejected", str(e))
                return
            verify_command = UpdateError = None
            new += _new("spnode.update", "spnode.httpget")
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
