"""The technician's steps, each usable alone and in `commission`: identify, flash, deploy,
provision, selftest, record."""

from __future__ import annotations

import datetime as dt
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fieldtools import build as fw
from fieldtools import snippets
from fieldtools.client import Controller
from fieldtools.errors import FieldError
from fieldtools.progress import Reporter
from fieldtools.serialnode import MARK, NodeCodeError, NodeLink
from spnode.sensortypes import MODULE, TYPES

# ---- identify --------------------------------------------------------------------------------


def identify(link: NodeLink) -> dict[str, Any]:
    """What is on the line: MicroPython, platform, hardware id, board file, firmware, node.json."""
    try:
        found = link.exec_marked(snippets.IDENTIFY)
    except NodeCodeError as e:
        raise FieldError("node", f"the node could not answer: {e.last_line}") from None
    if not found:
        raise FieldError("node", f"no answer from MicroPython on {link.port}")
    info: dict[str, Any] = found[0]
    info["virtual"] = link.virtual
    return info


def check_fits(info: dict[str, Any], bdef: dict[str, Any], port: str) -> None:
    """Refuse a board file that does not fit the node on the line, or a MicroPython too old."""
    name = bdef.get("name", "?")
    platform = info.get("platform", "?")
    machine = info.get("machine", "")
    if bdef["platform"] == "esp32" and platform != "esp32":
        raise FieldError(
            "wrong_board",
            f"board {name} is for an ESP32, but the node on {port} is {machine or platform} "
            f"(platform {platform})",
            "a virtual node takes --board sim; otherwise check the port and the board name",
        )
    if bdef["platform"] == "sim" and platform == "esp32":
        raise FieldError(
            "wrong_board",
            f"board {name} is the simulated board, but the node on {port} is a real ESP32 "
            f"({machine})",
            "use this pole's board file, e.g. --board streetpole-esp32-v1",
        )
    compact = machine.upper().replace("-", "")
    for variant in ("ESP32S2", "ESP32S3", "ESP32C3", "ESP32C6", "ESP32P4"):
        if bdef["platform"] == "esp32" and variant in compact:
            raise FieldError(
                "wrong_board",
                f"board {name} is for a plain ESP32 (WROOM-32), the node is an {variant} "
                f"({machine})",
                "its pins differ: make a board file for it (hardware/boards/README.md)",
            )
    mpy = int(info.get("mpy") or 0) & 0xFF
    if mpy != fw.MPY_VERSION:
        raise FieldError(
            "wrong_board",
            f"the node's MicroPython {info.get('version')} loads .mpy v{mpy}; the firmware is "
            f"built as .mpy v{fw.MPY_VERSION}",
            "flash MicroPython 1.23 or newer (`streetpole node flash`)",
        )


# ---- flash -----------------------------------------------------------------------------------

# Where the MicroPython image starts, per chip (MicroPython's download page says the same).
CHIP_OFFSETS = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0}


def flash_commands(
    port: str, image: Path, chip: str, baud: int = 460800, erase: bool = True
) -> list[list[str]]:
    """The esptool command lines that flash ``image`` (erase first, then write)."""
    if chip not in CHIP_OFFSETS:
        raise FieldError("usage", f"unknown chip {chip!r}", f"one of {', '.join(CHIP_OFFSETS)}")
    if not image.is_file():
        raise FieldError(
            "usage",
            f"no firmware image at {image}",
            "download the MicroPython .bin for your board from micropython.org/download "
            "(ESP32_GENERIC for an ESP32 DevKitC); it is not shipped with Streetpole",
        )
    with image.open("rb") as f:
        magic = f.read(1)
    if magic != b"\xe9":
        raise FieldError(
            "usage",
            f"{image} is not an ESP32 firmware image (first byte {magic.hex() or 'none'}, "
            "expected e9)",
            "use the .bin from micropython.org, not the .uf2, .elf or .app-bin",
        )
    base = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", str(baud)]
    cmds = [[*base, "erase-flash"]] if erase else []
    cmds.append([*base, "write-flash", hex(CHIP_OFFSETS[chip]), str(image)])
    return cmds


def chip_for_board(bdef: dict[str, Any]) -> str:
    if bdef["platform"] != "esp32":
        raise FieldError(
            "wrong_board",
            f"board {bdef.get('name')} is the simulated board: there is no chip to flash",
            "a virtual node already runs MicroPython; go on with `deploy`",
        )
    return "esp32"


# esptool's fatal errors, by what they say: the kind (exit code) and what to do. Its own
# message goes to the technician as it is ("Failed to connect to ESP32: No serial data
# received."); its general troubleshooting link does not name the cause, so it is left out.
ESPTOOL_HINTS = (
    ("no such file or directory", "no_port", "check the cable and --port"),
    ("port is busy", "port_busy", "close other serial programs (mpremote, Thonny, screen)"),
    ("could not open port", "no_port", "check the cable and --port"),
    (
        "wrong --chip",
        "wrong_board",
        "the chip on the board is not the one the board file names: check the board",
    ),
    (
        "failed to connect",
        "flash",
        "hold BOOT, tap EN, release BOOT, and run again (some boards need it); "
        "try a lower --baud or another cable",
    ),
)
FATAL = "a fatal error occurred:"


def run_flash(cmds: list[list[str]], rep: Reporter) -> None:
    import subprocess

    for cmd in cmds:
        rep.line("$ " + shlex.join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:  # esptool's own progress lines ("Writing at 0x... (42 %)")
            rep.raw("    " + line)
            tail = [*tail[-30:], line]
        if proc.wait() != 0:
            cause, detail = esptool_cause(tail)
            low = detail.lower()
            for needle, kind, hint in ESPTOOL_HINTS:
                if needle in low:
                    raise FieldError(kind, f"esptool: {cause}", hint)
            raise FieldError("flash", f"esptool: {cause}", "see esptool's output above")


def esptool_cause(lines: list[str]) -> tuple[str, str]:
    """esptool's own reason for failing (the text of its fatal error, else its last line) and
    that with the detail lines esptool prints after it."""
    for k in range(len(lines) - 1, -1, -1):
        i = lines[k].lower().find(FATAL)
        if i >= 0:
            cause = lines[k][i + len(FATAL) :].strip() or "fatal error"
            return cause, "".join([cause, *lines[k + 1 :]])
    real = [ln.strip() for ln in lines if ln.strip() and "troubleshooting" not in ln.lower()]
    last = real[-1] if real else "no output"
    return last, last


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


# ---- deploy ----------------------------------------------------------------------------------


def remote_hashes(link: NodeLink, roots: list[str]) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    try:
        for path, digest, size in link.exec_marked(snippets.hash_tree(roots)):
            out[path] = (digest, size)
    except NodeCodeError as e:
        if "hashlib" in e.output:
            raise FieldError(
                "wrong_board", "the node's MicroPython has no hashlib.sha256", "flash a full build"
            ) from None
        raise FieldError("node", f"hashing files on the node failed: {e.last_line}") from None
    return out


def deploy(
    link: NodeLink, board: str, rep: Reporter, info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Compile, upload what differs (by sha256 on the node), remove stale app files, verify."""
    t0 = time.monotonic()
    _path, bdef = fw.load_board(board)
    info = info or identify(link)
    check_fits(info, bdef, link.port)
    with tempfile.TemporaryDirectory(prefix="streetpole-mpy-") as tmp:
        b = fw.build(Path(tmp), board)
    compiled = time.monotonic() - t0
    rep.line(
        f"    compiled {len(b.app_files)} modules for {fw.ARCH} "
        f"({b.total_bytes / 1024:.1f} KiB with boot.py, main.py, board.json) in {compiled:.1f} s"
    )
    local = b.hashes
    roots = [fw.APP, *sorted(p for p in b.files if "/" not in p)]
    before = remote_hashes(link, roots)
    changed = [p for p in b.files if before.get(p, ("", 0))[0] != local[p]]
    stale = sorted(p for p in before if p.startswith(fw.APP + "/") and p not in b.files)
    need = sum(len(b.files[p]) for p in changed) - sum(before.get(p, ("", 0))[1] for p in changed)
    free = info.get("flash_free")
    if isinstance(free, int) and need > free:
        raise FieldError(
            "node",
            f"not enough flash: {need / 1024:.0f} KiB more needed, {free / 1024:.0f} KiB free",
            "remove old files (`mpremote fs ls`, e.g. /app.old) or erase and re-flash",
        )
    rep.line(
        f"    {len(changed)} of {len(b.files)} files differ from the node"
        + (f", {len(stale)} stale" if stale else "")
    )
    if changed:
        dirs: set[str] = set()
        for p in changed:
            parts = p.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        link.exec(snippets.mkdirs(sorted(dirs, key=lambda d: (d.count("/"), d))))
        total = sum(len(b.files[p]) for p in changed)
        sent = 0
        for p in changed:
            data = b.files[p]
            base = sent

            def prog(done: int, _n: int, base: int = base) -> None:
                rep.progress(f"upload {_count(len(changed), 'file')}", base + done, total)

            link.write_file(p, data, prog)
            sent += len(data)
            if not data:
                rep.progress(f"upload {_count(len(changed), 'file')}", sent, total)
    if stale:
        link.exec(snippets.remove(stale))
    after = remote_hashes(link, roots)
    bad = [p for p in b.files if after.get(p, ("", 0))[0] != local[p]]
    if bad:
        raise FieldError(
            "verify",
            f"{len(bad)} files on the node do not match after upload: {', '.join(bad[:5])}",
            "flash full or a bad cable; run deploy again (it sends only what differs)",
        )
    seconds = time.monotonic() - t0
    rep.line(f"    verified {len(b.files)} files by sha256 on the node ({seconds:.1f} s)")
    return {
        "board": bdef.get("name"),
        "uploaded": changed,
        "removed": stale,
        "files": len(b.files),
        "bytes_sent": sum(len(b.files[p]) for p in changed),
        "seconds": round(seconds, 2),
        "version": fw.firmware_version(),
        "hash": fw.manifest_hash({p: h for p, (h, _n) in after.items()}),
    }


# ---- provision -------------------------------------------------------------------------------

PURPOSE = {
    "lighting": "street lighting, dimmed on presence",
    "air": "air quality (PM, NO2, temperature, humidity)",
    "noise": "noise levels (LAeq); no audio leaves the node",
    "motion": "presence counts for dimming; no identifiers of people",
}
POSITION_WARN_M = 20.0
POSITION_LIMIT_M = 100.0


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371000 * math.asin(math.sqrt(h))


def check_pole(
    ctl: Controller,
    *,
    pole: str,
    lat: float | None = None,
    lon: float | None = None,
    owner: int | None = None,
    accept_position: bool = False,
) -> dict[str, Any] | None:
    """The preflight against the controller, before the node is touched: the pole is in the
    registry (or can be registered: ``owner``, ``lat`` and ``lon`` given) and the measured
    position is within POSITION_LIMIT_M of the registry's. Returns the pole, or None when
    provisioning will register it. Changes nothing."""
    p: dict[str, Any] | None = ctl.request("GET", f"/api/poles/{pole}", ok404=True)
    if p is None:
        if owner is None or lat is None or lon is None:
            raise FieldError(
                "controller",
                f"pole {pole} is not in the registry (or not visible to your account)",
                "check the pole id on its label; an operator registers poles (with an operator "
                "token, --owner <owner id> --lat --lon register it now)",
            )
        return None
    if lat is not None and lon is not None and not accept_position:
        where = (float(p["lat"]), float(p["lon"]))
        d = distance_m(where, (lat, lon))
        if d > POSITION_LIMIT_M:
            raise FieldError(
                "position",
                f"you are {d:.0f} m from where the registry has pole {pole} "
                f"({where[0]:.6f}, {where[1]:.6f}): is this the right pole?",
                "check the pole label; if the registry is wrong, pass --accept-position and tell "
                "an operator to correct it",
            )
    return p


class _Undo:
    """What a provisioning registered so far, removed again if a later step fails: a failed
    provision leaves the registry as it found it. Removing needs the rights that adding took
    (an operator's token for poles and modules; a node only an operator removes), so what a
    technician's token cannot undo is named; running provision again reuses it."""

    def __init__(self, ctl: Controller, rep: Reporter) -> None:
        self.ctl = ctl
        self.rep = rep
        self.done: list[tuple[str, str]] = []  # (what, API path), in the order made

    def add(self, what: str, path: str) -> None:
        self.done.append((what, path))

    def roll_back(self) -> None:
        left: list[str] = []
        for what, path in reversed(self.done):
            try:
                self.ctl.request("DELETE", path)
                self.rep.line(f"    rolled back: {what}")
            except FieldError:
                left.append(what)
        if left:
            self.rep.line(
                f"    left registered (your account may not remove it): {', '.join(left)}; "
                "`provision` again reuses it, or an operator removes it (`streetpole node "
                "remove`)"
            )


def provision(
    link: NodeLink,
    ctl: Controller,
    rep: Reporter,
    *,
    pole: str,
    node: str = "n1",
    lat: float | None = None,
    lon: float | None = None,
    sensors: list[str] | None = None,
    wifi_ssid: str,
    wifi_password: str = "",
    broker: str | None = None,
    owner: int | None = None,
    accept_position: bool = False,
    info: dict[str, Any] | None = None,
    replace: bool = False,
) -> dict[str, Any]:
    """Register pole position, node and modules with the controller; write node.json. Every
    check comes before the first change; a step that fails after one rolls back what this run
    registered (``_Undo``)."""
    p = check_pole(ctl, pole=pole, lat=lat, lon=lon, owner=owner, accept_position=accept_position)
    info = info or identify(link)
    if not info.get("board"):
        raise FieldError(
            "node", "no board.json on the node", "run `streetpole node deploy --board ...` first"
        )
    board = str(info["board"])
    _path, bdef = fw.load_board(board) if fw.board_file_exists(board) else (None, None)
    if not info.get("firmware"):
        raise FieldError(
            "node", "no Streetpole firmware on the node", "run `streetpole node deploy` first"
        )
    # sensors (names from the node's board file) and the registry modules they make
    fitted = list(info.get("sensors") or [])
    chosen = sensors if sensors else fitted
    unknown = [s for s in chosen if s not in fitted]
    if unknown:
        raise FieldError(
            "wrong_board",
            f"sensors not in the node's board file ({board}): {', '.join(unknown)}",
            f"fitted on this board: {', '.join(fitted) or 'none'}",
        )
    types = {s: (bdef or {}).get("sensors", {}).get(s, {}).get("type", "") for s in chosen}
    wanted = {TYPES[t][MODULE] for t in types.values() if t in TYPES}  # registry modules
    if bdef is None or bdef.get("lamp"):
        wanted.add("lighting")
    undo = _Undo(ctl, rep)
    try:
        cred, where, modules = _register(
            ctl, rep, undo, p, pole, node, lat, lon, owner, wanted, info, board, replace
        )
        broker_url = broker or cred["broker_url"]
        if not info.get("virtual") and any(h in broker_url for h in ("127.0.0.1", "localhost")):
            rep.line(
                f"    warning: broker {broker_url} is a loopback address the node cannot reach; "
                "pass --broker with the broker's public name"
            )
        cfg: dict[str, Any] = {
            "pole": pole,
            "node": node,
            "wifi": {"ssid": wifi_ssid, "password": wifi_password},
            "broker": broker_url,
            "username": cred["mqtt_username"],
            "password": cred["mqtt_password"],
            "location": {"lat": where[0], "lon": where[1]},
            "board": board,
            "sensors": chosen,
            "update_key": cred["update_key"],
        }
        # the only CA the node will trust for its broker and downloads, and the broker's name
        if cred.get("broker_ca"):
            cfg["ca"] = cred["broker_ca"]
        if cred.get("broker_server_name"):
            cfg["server_name"] = cred["broker_server_name"]
        fw.check_node_config(cfg)
        _install_node_json(link, cfg)
    except BaseException:
        undo.roll_back()
        raise
    rep.line(
        f"    node {pole}/{node} (registry id {cred['node']['id']}) provisioned; "
        f"node.json written and checked by the node"
    )
    return {
        "registry_id": cred["node"]["id"],
        "mqtt_username": cred["mqtt_username"],
        "broker": broker_url,
        "location": {"lat": where[0], "lon": where[1]},
        "sensors": chosen,
        "sensor_types": types,
        "modules": modules,
        "hardware_id": info.get("hardware_id"),
        "board": board,
    }


def _register(
    ctl: Controller,
    rep: Reporter,
    undo: _Undo,
    p: dict[str, Any] | None,
    pole: str,
    node: str,
    lat: float | None,
    lon: float | None,
    owner: int | None,
    wanted: set[str],
    info: dict[str, Any],
    board: str,
    replace: bool,
) -> tuple[dict[str, Any], tuple[float, float], list[dict[str, Any]]]:
    """The registry's part of provisioning: the pole (if new), the node and its credentials,
    the modules; each change noted in ``undo``."""
    if p is None:  # check_pole let it through: owner, lat and lon are given
        assert owner is not None and lat is not None and lon is not None
        body = {"id": pole, "name": pole, "lat": lat, "lon": lon, "owner_id": owner}
        p = ctl.request("POST", "/api/poles", json=body)
        assert p is not None
        undo.add(f"pole {pole}", f"/api/poles/{pole}")
        rep.line(f"    registered pole {pole} at {lat:.6f}, {lon:.6f}")
    where = (float(p["lat"]), float(p["lon"]))
    if lat is not None and lon is not None:
        d = distance_m(where, (lat, lon))
        if d > POSITION_WARN_M:
            rep.line(f"    warning: {d:.0f} m from the registered position of {pole}")
        where = (lat, lon)
    known = [
        n for n in ctl.request("GET", "/api/nodes", params={"pole": pole}) if n["node"] == node
    ]
    try:
        cred = ctl.request(
            "POST",
            "/api/nodes",
            json={
                "pole": pole,
                "node": node,
                "hardware_id": info.get("hardware_id"),
                "board": board,
                "replace": replace,
            },
        )
    except FieldError as e:
        if "last heard" in e.message:  # 409 from the controller: that node is in service
            raise FieldError(
                "in_service",
                e.message.split(": 409 ", 1)[-1],
                "check the pole id on its label; to replace that node on purpose (new "
                "hardware, a reset node.json), run again with --replace",
            ) from None
        if "already provisioned" in e.message:
            e.hint = (
                "this ESP32 is registered on another pole: if it moved, an operator removes "
                "the old node first (`streetpole node remove <old pole>/<node>`), then "
                "provision again"
            )
        raise
    if not known:
        undo.add(f"node {pole}/{node}", f"/api/nodes/{cred['node']['id']}")
    have = {m["type"]: m for m in p.get("modules", [])}
    modules: list[dict[str, Any]] = []
    for kind in sorted(wanted):
        if kind in have:
            modules.append({"type": kind, "id": have[kind]["id"], "status": "registered"})
            continue
        body = {"type": kind, "owner_id": p["owner_id"], "purpose": PURPOSE[kind], "node": node}
        try:
            m = ctl.request("POST", f"/api/poles/{pole}/modules", json=body)
        except FieldError as e:
            if "not allowed" not in e.message:
                raise
            modules.append({"type": kind, "id": None, "status": "missing"})
            continue
        undo.add(f"{kind} module {m['id']}", f"/api/modules/{m['id']}")
        modules.append({"type": kind, "id": m["id"], "status": "added"})
    missing = [m["type"] for m in modules if m["status"] == "missing"]
    rep.line(
        "    modules: "
        + ", ".join(f"{m['type']} ({m['status']})" for m in modules)
        + (f"; an operator must add {', '.join(missing)}" if missing else "")
    )
    return cred, where, modules


def _install_node_json(link: NodeLink, cfg: dict[str, Any]) -> None:
    link.write_file("node.json.new", json.dumps(cfg).encode())
    try:
        res = link.exec_marked(snippets.INSTALL_NODE_JSON)
    except NodeCodeError as e:
        raise FieldError("node", f"installing node.json failed: {e.last_line}") from None
    if not res or not res[0].get("ok"):
        reason = res[0].get("reason") if res else "no answer"
        raise FieldError("node", f"the node refuses its node.json: {reason}")


def parse_target(target: str) -> tuple[str, str]:
    """``RTD-0001/n1`` (or ``RTD-0001``: its node n1) as (pole, node)."""
    pole, _, node = target.partition("/")
    if not pole or "/" in node:
        raise FieldError(
            "usage", f"{target!r} is not a node", "write it as <pole>/<node>, e.g. RTD-0001/n1"
        )
    return pole, node or "n1"


def find_node(ctl: Controller, pole: str, node: str) -> dict[str, Any]:
    """The registry's node ``pole``/``node`` with the modules it measures for."""
    found = [
        n for n in ctl.request("GET", "/api/nodes", params={"pole": pole}) if n["node"] == node
    ]
    if not found:
        raise FieldError(
            "controller",
            f"no node {pole}/{node} in the registry (or not visible to your account)",
            "check the pole id on its label and the node name",
        )
    out: dict[str, Any] = found[0]
    p = ctl.request("GET", f"/api/poles/{pole}")
    out["modules"] = [m for m in p.get("modules", []) if m.get("node") == node]
    return out


def describe_node(n: dict[str, Any]) -> str:
    last = n.get("last_seen")
    heard = (
        dt.datetime.fromtimestamp(last, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if last
        else "never"
    )
    mods = ", ".join(f"{m['type']} ({m['id']})" for m in n["modules"]) or "none"
    return (
        f"{n['pole_id']}/{n['node']} (registry id {n['id']}, hardware {n.get('hardware_id')}, "
        f"last heard {heard}); its modules: {mods}"
    )


def remove(ctl: Controller, rep: Reporter, gone: dict[str, Any]) -> None:
    """Remove a node found by ``find_node``: its modules, then the node; the controller drops
    its broker account and audits each removal."""
    for m in gone["modules"]:
        ctl.request("DELETE", f"/api/modules/{m['id']}")
    ctl.request("DELETE", f"/api/nodes/{gone['id']}")
    modules = _count(len(gone["modules"]), "module")
    rep.line(
        f"    removed {gone['pole_id']}/{gone['node']} and {modules}; "
        "its broker credentials no longer work"
    )


# ---- selftest --------------------------------------------------------------------------------

HINTS = (
    ("no answer on i2c", "I2C: check SDA/SCL, the sensor's address and its power"),
    ("crc", "noise on long cables: shorten or twist the wires"),
    ("checksum", "noise on long cables: shorten or twist the wires"),
    ("no valid frame", "UART: RX/TX swapped, wrong baud rate, or the sensor unpowered/asleep"),
    ("rail", "analogue input at a rail: a cut wire or a short"),
    ("constant", "microphone not connected: check L/R to GND and the SD pin"),
    ("clipping", "microphone clipping: mounted against something loud or faulty"),
    ("lamp_failure", "lamp or driver dead, or the current sense not wired"),
    ("relay_stuck", "lamp relay stuck on: replace the relay"),
    ("cannot connect", "the node's network cannot reach the broker: Wi-Fi, firewall, URL"),
    (
        "refused: connack",
        "the broker does not take the node's credentials: provision the node again "
        "(`streetpole node provision`); an operator may have removed it",
    ),
    ("tls to", "the broker's certificate is not the one provisioned: check the Wi-Fi it joined"),
    ("not connected to", "Wi-Fi: check SSID and password in node.json and the signal"),
    ("memoryerror", "not enough heap on the node for this check"),
)


def hint_for(reason: str) -> str:
    low = reason.lower()
    for needle, hint in HINTS:
        if needle in low:
            return hint
    return ""


class _Lines:
    """Pass the node's output through, except the tools' own `@@SP` lines."""

    def __init__(self, rep: Reporter) -> None:
        self.rep = rep
        self.buf = ""

    def __call__(self, text: str) -> None:
        self.buf += text
        *lines, self.buf = self.buf.split("\n")
        for ln in lines:
            if not ln.startswith(MARK):
                self.rep.line("    " + ln.rstrip("\r"))


def selftest(
    link: NodeLink, rep: Reporter, broker_check: bool = False, fail: bool = True
) -> list[dict[str, Any]]:
    """The firmware's self-test on the node; its table goes to the reporter. With ``fail``, any
    failed check raises a FieldError naming the checks and what to look at."""
    try:
        results: list[dict[str, Any]] = link.exec_marked(
            snippets.selftest(broker_check), on_output=_Lines(rep)
        )
    except NodeCodeError as e:
        low = e.output.lower()
        if "board.json" in low or "no board file" in low:
            raise FieldError(
                "node", f"no usable board.json: {e.last_line}", "run `deploy` first"
            ) from None
        if "node.json" in low:
            raise FieldError(
                "node", f"no usable node.json: {e.last_line}", "run `provision` first"
            ) from None
        if "no module named" in low:
            raise FieldError(
                "node", f"firmware missing on the node: {e.last_line}", "run `deploy` first"
            ) from None
        raise FieldError("node", f"the self-test stopped: {e.last_line}") from None
    bad = [r for r in results if not r["ok"]]
    if bad and fail:
        raise selftest_error(results)
    return results


def selftest_error(results: list[dict[str, Any]]) -> FieldError:
    bad = [r for r in results if not r["ok"]]
    lines = [f"{r['name']}: {r['reason']}" for r in bad]
    hints = [f"{r['name']}: {h}" for r in bad if (h := hint_for(r["reason"]))]
    return FieldError(
        "selftest",
        f"self-test: {len(bad)} of {len(results)} checks failed\n    " + "\n    ".join(lines),
        "\n        ".join(hints) if hints else "see docs/technician-sensing.md (Self-test)",
    )


# ---- record ----------------------------------------------------------------------------------


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def record_path(folder: Path, pole: str, node: str, when: dt.datetime) -> Path:
    return folder / f"{pole}-{node}-{when.strftime('%Y%m%dT%H%M%SZ')}.json"


def write_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
