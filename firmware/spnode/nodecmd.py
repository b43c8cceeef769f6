"""What a Node (spnode.app) does with an incoming command: loaded for the message, then
unloaded (spnode.unload), together with the protocol checks it brought in."""

import gc
import json
import os
import sys

from protocols.errors import ProtocolError
from spnode import UPDATE_CMD, unload
from spnode.flash import write_atomic

_TRANSIENT = ("protocols.incoming", "protocols.topics")


async def handle(node, payload):
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
            checks = selftest.run(node.board, node.board.bdef, out=_Null())
        finally:
            selftest = None
            unload(*new)
        node._ack(ident, "cmd", "applied", checks=checks)
    elif kind == "update":
        new = _new("spnode.updsig")
        try:
            from spnode import updsig

            try:
                if node.data_dir is None:
                    raise updsig.UpdateError("update: no flash storage on this node")
                now = node.clock.now() if node.clock.valid else None
                updsig.accept(
                    cmd, node.local.update_key, _target(node), now, node.fw, node.data_dir
                )
            except updsig.UpdateError as e:
                node._ack(ident, "cmd", "rejected", str(e))
                return
        finally:
            updsig = None
            unload(*new)
        _save(node, cmd, 0)
        node._ack(ident, "cmd", "accepted")
        await node._flush()
        node.stop("reboot")  # the download runs at the next boot: see boot_update


def _target(node):
    """What an update command's signature names as its target (spnode.updsig.manifest)."""
    return node.local.pole + "/" + node.local.node


def _new(*names):
    """Those of the modules not loaded yet (to unload after use; one already loaded, e.g. the
    updater main.py keeps for the probation check, stays: its classes are in use)."""
    return [n for n in names if n not in sys.modules]


# ---- updates: accepted, then downloaded at the next boot ------------------------------------
# Why at boot: a node that has run for a while has its heap taken and split into small holes
# (in 96 KiB, 2 KiB were free at the moment an update came, in pieces of at most 352 bytes),
# and a download needs the update and HTTP code, a connection and its buffers at once. Right
# after a reboot the same download finds the heap whole. So the command is checked (signature,
# version), kept on flash and acknowledged "accepted", and the node reboots; the next boot runs
# the download before it connects to MQTT (spnode.app.Node._boot_update; only the light's
# control, the watchdog and Wi-Fi run beside it), then connects, publishes its birth message,
# acknowledges "applied" and reboots into the staged version, or acknowledges "failed" and
# carries on.
TRIES = 3  # boots that start the same download (a reset in the middle of one retries it)
WIFI_WAIT_MS = 60000


def _save(node, cmd, tries):
    cmd["tries"] = tries
    write_atomic(node.data_dir + "/" + UPDATE_CMD, json.dumps(cmd).encode())


async def boot_update(node):
    """The download of the update accepted before this boot: the command's id when it is
    staged (spnode.app acknowledges it), else None (failures are acknowledged here)."""
    path = node.data_dir + "/" + UPDATE_CMD
    try:
        with open(path) as f:
            cmd = json.loads(f.read())
        tries = cmd.pop("tries") + 1
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        _drop(path)  # torn or unreadable: the controller sees no outcome and can send it again
        return None
    if tries > TRIES:
        _drop(path)
        _failed(node, cmd["id"], "update: gave up after %d boots" % TRIES)
        return None
    _save(node, cmd, tries)  # counted before anything that could reset the node
    waited = 0
    while not _online(node) and waited < WIFI_WAIT_MS:
        await node._sleep(500)
        waited += 500
    new = _new("spnode.update", "spnode.updsig", "spnode.httpget", "spnode.imgupdate")
    short = False  # every try ran out of heap
    try:
        # the code, the connection and the image's buffers go into one piece of free heap, not
        # around garbage, and are tried again after a pause if they do not fit. The update code
        # is imported in _download, whose frame ends with it: a name bound here would keep the
        # modules alive after unload (the report of a failure then found no heap left: the
        # boot's update task died, the node never connected)
        ident, failure = await node._retry(_download, node, cmd)
    except MemoryError as e:
        short, ident, failure = True, None, "update: %r" % e
    finally:
        if not short or tries >= TRIES:
            _drop(path)
        unload(*new)
    if short and tries < TRIES:
        # A boot now and then holds a few KiB more than the others (docs/firmware.md,
        # "Memory"), and then stays short of heap: the command is kept and the node reboots
        # to download it with a fresh heap, within the same limit of boots as a reset would.
        print("update: out of heap, rebooting to try again")
        node.stop("reboot")
        return None
    if failure is None:
        return ident
    # reported once the update code and its buffers are gone (and tried again likewise)
    await node._retry(_failed, node, cmd["id"], failure)
    return None


def _online(node):
    try:
        return node.board.wlan().isconnected()
    except Exception:  # a board without Wi-Fi (wired, simulated): nothing to wait for
        return True


def _drop(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _failed(node, ident, reason):
    node._alarm("updateFailed", True, reason)
    node._ack(ident, "cmd", "failed", reason)


async def _download(node, cmd):
    """(the command's id, None) once the image is staged, else (None, why it failed)."""
    from spnode import httpget
    from spnode.updsig import UpdateError

    up = node.updater
    image = getattr(up, "whole_image", False)  # spnode.imgupdate: A/B slots, not a .mpy tree
    if not image:
        from spnode import update

        if up is None:
            up = update.Updater(node.data_dir, version=node.fw)  # not kept: not on probation
    try:
        inst = up.begin(cmd, node.local.update_key, _target(node))
    except UpdateError as e:
        return None, str(e)
    gc.collect()
    try:
        for attempt in range(3):
            try:
                await httpget.get(
                    cmd["url"], inst.feed, inst.got, cmd["size"], chunk=512,
                    ssl=node.local.tls_context,
                )  # fmt: skip
                break
            except OSError as e:
                if attempt == 2:
                    why = "url: download failed at %d: %s" % (inst.got, e)
                    raise UpdateError(why) from None
                await node._sleep(2000 << attempt)
        inst.finish()  # an image's records what it staged itself
        if not image:
            update.staged(node.data_dir, cmd["version"])
    except Exception as e:
        if not image or isinstance(e, UpdateError):
            inst.abort()  # an image download cut short keeps its progress, to resume
        if isinstance(e, MemoryError):
            raise  # tried again (boot_update)
        return None, str(e) if isinstance(e, UpdateError) else "update: %r" % e
    return cmd["id"], None


class _Null:
    def write(self, s):
        pass
