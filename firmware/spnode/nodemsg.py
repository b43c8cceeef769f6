"""What a Node (spnode.app) does with an incoming config, and with the persisted config at boot:
loaded for the message, then unloaded (spnode.unload), together with the protocol checks it
brought in, so none of it stays in the heap between messages. Commands are in
spnode.nodecmd, so their code is not in the heap while a config is checked."""

from spnode import unload

# loaded to check a message and unloaded before the next step, so the checks and what comes
# after them (applying a config, an update's download) are not in the heap at the same time;
# spnode.nodemsg itself is unloaded by the caller. Nothing here keeps a module-level reference
# to them.
_TRANSIENT = ("spnode.remoteconfig", "protocols.incoming")


def _remote(node):
    """A RemoteConfig over the node's own record of the config in force (spnode.app._Remote)."""
    from spnode.remoteconfig import RemoteConfig

    r = node.remote
    rc = RemoteConfig(r.path)
    rc.config = r.config
    rc.rejected = r.rejected
    rc.digest = r.digest
    return rc


def _keep(node, rc):
    r = node.remote
    r.config = rc.config
    r.rejected = rc.rejected
    r.digest = rc.digest


def _same(known, payload):
    import hashlib

    return known is not None and hashlib.sha256(payload).digest() == known


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
    node.dimmer.configure(cfg, node.local.location)
    node.period_s = cfg["report_period_s"]
    nbs = []
    own = node.t_presence.split("/")  # prefix/pole/node/presence; protocols.topics costs 3 KB
    for nb in cfg.get("neighbours", ()):
        own[2] = nb["pole"]  # checked by the config check
        own[3] = nb["node"]
        nbs.append("/".join(own))
    # neighbours no longer configured: their presence would only pass through the inbox
    node.client.unsubscribe([t for t in node.neighbours if t not in nbs])
    node.client.subscribe(nbs, 0)
    node.neighbours = tuple(nbs)
    cal = cfg.get("calibration", {})
    parts = node.sensors
    if parts.noise is not None and "noise_offset_db" in cal:
        parts.noise.set_offset(cal["noise_offset_db"])
    if parts.no2 is not None and "no2_we_zero_mv" in cal:
        parts.no2.calibrate(
            cal.get("no2_we_zero_mv"),
            cal.get("no2_ae_zero_mv"),
            cal.get("no2_sensitivity_mv_ppb"),
        )
    node._state_due = True


def handle(node, payload):
    """A config (commands are spnode.nodecmd's)."""
    try:
        _config(node, payload)
    finally:
        unload(*_TRANSIENT)


def _config(node, payload):
    old = node.remote.config
    if old is not None and _same(node.remote.digest, payload):
        # the config in force, sent again (the retained message, on every connect): applied,
        # without loading the checks (a 96 KiB node rebooted with a large config had no room
        # to check it a second time)
        ts = int(node.clock.now())
        ack = {"id": str(old["version"]), "kind": "config", "ts": ts, "status": "applied"}
        node._alarm("configRejected", False)
        node.acks += 1
        node._queue(node.t_ack, ack, "ack")
        return
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
