"""`streetpole node ...`: the technician's commands (see docs/technician.md)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from fieldtools import steps
from fieldtools.client import Controller
from fieldtools.errors import EXIT, FieldError
from fieldtools.progress import Reporter
from fieldtools.serialnode import NodeLink, find_port

if TYPE_CHECKING:
    from fieldtools.virtual_node import VirtualNode

node_app = typer.Typer(
    help="The technician's tools: flash, commission, test a node",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: rich's boxes cut defaults at 80 columns
)
T = TypeVar("T")

PORT = typer.Option(None, "--port", "-p", envvar="STREETPOLE_PORT", help="serial port of the node")
BOARD = typer.Option(
    "streetpole-esp32-v1", "--board", "-b", help="board file name (hardware/boards) or path"
)
CONTROLLER = typer.Option(
    "http://127.0.0.1:8000",
    "--controller",
    envvar="STREETPOLE_CONTROLLER_URL",
    help="controller base URL",
)
TOKEN = typer.Option(None, "--token", envvar="STREETPOLE_TOKEN", help="API token (technician)")
RESET = typer.Option(
    None,
    "--soft-reset/--resume",
    help="soft-reset the node before talking to it (default: yes on USB, no on a virtual node)",
)

IMAGE_ARG = typer.Argument(..., help="MicroPython .bin for the board (not shipped)")
IMAGE_OPT = typer.Option(None, help="MicroPython .bin: flash it first (new ESP32)")
RECORD_OPT = typer.Option(None, help="record file (default: commissioning/...)")
RECORD_ARG = typer.Argument(..., help="a commissioning record JSON file")
FLASH_OPT = typer.Option(Path("var/virtual-node"), "--flash", help="the node's flash")
REPLACE = typer.Option(
    False,
    "--replace",
    help="provision again a node the controller heard in the last minutes (it goes off the "
    "broker: its old credentials stop working)",
)
OWNER = typer.Option(None, help="owner id, to register a new pole (operator token)")
ACCEPT_POSITION = typer.Option(
    False,
    "--accept-position",
    help="go on although the position is over 100 m from the registry's",
)
FAULT_OPT = typer.Option([], help="simulated fault, e.g. climate=absent, lamp=broken")


def _fail(e: FieldError) -> typer.Exit:
    typer.echo(f"error: {e}", err=True)
    return typer.Exit(e.exit_code)


def guarded(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except FieldError as e:
        raise _fail(e) from None


@contextmanager
def _link(port: str | None, soft_reset: bool | None) -> Iterator[NodeLink]:
    link = NodeLink(find_port(port), soft_reset=soft_reset)
    try:
        yield link
    finally:
        link.close()


@node_app.command()
def flash(
    image: Path = IMAGE_ARG,
    port: str | None = PORT,
    board: str = BOARD,
    chip: str | None = typer.Option(None, help="override the chip the board file implies"),
    baud: int = typer.Option(460800, help="esptool baud rate (lower it on long cables)"),
    erase: bool = typer.Option(True, help="erase the whole flash first (loses node.json)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the esptool commands only"),
) -> None:
    """Erase the flash and write a MicroPython image with esptool."""
    rep = Reporter()

    def go() -> None:
        from fieldtools.build import load_board

        _p, bdef = load_board(board)
        the_chip = chip or steps.chip_for_board(bdef)
        the_port = find_port(port)  # a dry run too: the commands name a port that is there
        cmds = steps.flash_commands(the_port, image, the_chip, baud, erase)
        if dry_run:
            import shlex

            for c in cmds:
                typer.echo(shlex.join(c))
            return
        rep.step(f"flashing {image.name} onto the {the_chip} on {the_port}")
        steps.run_flash(cmds, rep)
        rep.line("    done: MicroPython is on the node; next `streetpole node deploy`")

    guarded(go)


@node_app.command(short_help="Upload the firmware to the node; verify it by sha256.")
def deploy(port: str | None = PORT, board: str = BOARD, soft_reset: bool | None = RESET) -> None:
    """Compile the firmware (.mpy for the ESP32), upload what changed, verify by sha256."""
    rep = Reporter()

    def go() -> None:
        with _link(port, soft_reset) as link:
            rep.step(f"deploy to {link.port}")
            r = steps.deploy(link, board, rep)
            rep.line(f"    firmware {r['version']} hash {r['hash'][:16]}")

    guarded(go)


def _split(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


@node_app.command(short_help="Register the node and write its node.json.")
def provision(
    pole: str = typer.Option(..., help="pole id from its label, e.g. RTD-0001"),
    node: str = typer.Option("n1", help="node name on the pole"),
    lat: float | None = typer.Option(None, help="measured position (GPS) of the pole"),
    lon: float | None = typer.Option(None),
    sensors: str | None = typer.Option(None, help="comma list; default: all in board.json"),
    wifi_ssid: str = typer.Option(..., envvar="STREETPOLE_WIFI_SSID"),
    wifi_password: str = typer.Option("", envvar="STREETPOLE_WIFI_PASSWORD"),
    broker: str | None = typer.Option(None, help="broker URL for the node (default: controller's)"),
    owner: int | None = OWNER,
    accept_position: bool = ACCEPT_POSITION,
    replace: bool = REPLACE,
    port: str | None = PORT,
    controller: str = CONTROLLER,
    token: str | None = TOKEN,
    soft_reset: bool | None = RESET,
) -> None:
    """Register the node with the controller and write its node.json."""
    rep = Reporter()

    def go() -> None:
        ctl = Controller(controller, token)
        try:
            ctl.me()  # controller reachable and token good, before touching the node
            steps.check_pole(  # a wrong pole id or position, before touching the node
                ctl, pole=pole, lat=lat, lon=lon, owner=owner, accept_position=accept_position
            )
            with _link(port, soft_reset) as link:
                rep.step(f"provision {pole}/{node} with {controller}")
                steps.provision(
                    link,
                    ctl,
                    rep,
                    pole=pole,
                    node=node,
                    lat=lat,
                    lon=lon,
                    sensors=_split(sensors),
                    wifi_ssid=wifi_ssid,
                    wifi_password=wifi_password,
                    broker=broker,
                    owner=owner,
                    accept_position=accept_position,
                    replace=replace,
                )
        finally:
            ctl.close()

    guarded(go)


@node_app.command(short_help="Remove a node and its modules from the registry.")
def remove(
    target: str = typer.Argument(
        ..., metavar="POLE/NODE", help="the node as <pole>/<node>, e.g. RTD-0001/n1"
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    controller: str = CONTROLLER,
    token: str | None = typer.Option(
        None, "--token", envvar="STREETPOLE_TOKEN", help="API token (operator)"
    ),
) -> None:
    """Remove a node and its modules from the registry (operator): its broker credentials stop
    working at once. No cable needed."""
    rep = Reporter()

    def go() -> None:
        pole, node = steps.parse_target(target)
        ctl = Controller(controller, token)
        try:
            me = ctl.me()  # the controller decides; asking first spares a question it refuses
            if me["role"] not in ("operator", "admin"):
                raise FieldError(
                    "controller",
                    f"removing a node takes an operator's token; {me['username']} is a "
                    f"{me['role']}",
                    "ask an operator to run `streetpole node remove`, or for a token",
                )
            found = steps.find_node(ctl, pole, node)
            typer.echo(f"remove {steps.describe_node(found)}")
            if not yes and not typer.confirm("remove it?", default=False):
                raise FieldError("failed", "nothing removed")
            steps.remove(ctl, rep, found)
        finally:
            ctl.close()

    guarded(go)


@node_app.command(short_help="Run the node's self-test: sensors, lamp, broker.")
def selftest(
    port: str | None = PORT,
    broker_check: bool = typer.Option(
        False, help="also join Wi-Fi and log in to the broker as the node"
    ),
    soft_reset: bool | None = RESET,
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
) -> None:
    """Run the firmware self-test on the node and show the pass/fail table."""
    rep = Reporter(quiet=as_json)

    def go() -> None:
        with _link(port, soft_reset) as link:
            rep.step(f"self-test on {link.port}")
            results = steps.selftest(link, rep, broker_check, fail=False)
        if as_json:
            typer.echo(json.dumps(results, indent=2))
        if any(not r["ok"] for r in results):
            raise steps.selftest_error(results)
        rep.line(f"    all {len(results)} checks passed")

    guarded(go)


@node_app.command(short_help="Flash, deploy, provision, self-test and record.")
def commission(
    pole: str = typer.Option(..., help="pole id from its label"),
    node: str = typer.Option("n1", help="node name on the pole"),
    lat: float | None = typer.Option(None, help="measured position (GPS)"),
    lon: float | None = typer.Option(None),
    board: str = BOARD,
    sensors: str | None = typer.Option(None, help="comma list; default: all in the board file"),
    wifi_ssid: str = typer.Option(..., envvar="STREETPOLE_WIFI_SSID"),
    wifi_password: str = typer.Option("", envvar="STREETPOLE_WIFI_PASSWORD"),
    broker: str | None = typer.Option(None, help="broker URL for the node (default: controller's)"),
    image: Path | None = IMAGE_OPT,
    broker_check: bool = typer.Option(
        True, help="self-test joins Wi-Fi and logs in to the broker as the node"
    ),
    technician: str | None = typer.Option(None, help="your name (default: the token's account)"),
    record: Path | None = RECORD_OPT,
    owner: int | None = OWNER,
    accept_position: bool = ACCEPT_POSITION,
    replace: bool = REPLACE,
    port: str | None = PORT,
    controller: str = CONTROLLER,
    token: str | None = TOKEN,
    soft_reset: bool | None = RESET,
) -> None:
    """Flash (with --image), deploy, provision, self-test and record, stopping at the first
    failure; the record goes to a JSON file and to the controller."""
    rep = Reporter()
    started = steps.utc_now()
    rec: dict[str, Any] = {
        "schema": "streetpole-commissioning/1",
        "status": "failed",
        "pole": pole,
        "node": node,
        "time": started.isoformat().replace("+00:00", "Z"),
        "technician": technician,
        "controller": controller,
        "steps": [],
    }
    path = record or steps.record_path(Path("commissioning"), pole, node, started)
    names = [
        "controller",
        *(["flash"] if image else []),
        "deploy",
        "provision",
        "selftest",
        "record",
    ]

    def run_step(name: str, fn: Callable[[], T]) -> T:
        i = names.index(name) + 1
        rep.step(f"[{i}/{len(names)}] {name}")
        t0 = time.monotonic()
        try:
            out = fn()
        except FieldError as e:
            rec["steps"].append(
                {
                    "name": name,
                    "ok": False,
                    "seconds": round(time.monotonic() - t0, 2),
                    "error": e.message,
                }
            )
            rec["failed_step"] = name
            steps.write_record(path, rec)
            typer.echo(
                f"error: commissioning stopped at step {i}/{len(names)} ({name}): {e}\n"
                f"  record of the attempt: {path}",
                err=True,
            )
            raise typer.Exit(e.exit_code) from None
        rec["steps"].append({"name": name, "ok": True, "seconds": round(time.monotonic() - t0, 2)})
        return out

    ctl: Controller | None = None

    def connect_controller() -> None:
        nonlocal ctl
        ctl = Controller(controller, token)
        me = ctl.me()
        rec["technician"] = technician or me["username"]
        rep.line(f"    {controller} as {me['username']} ({me['role']})")
        # the pole id and position, before the node is touched (not after a whole deploy)
        p = steps.check_pole(
            ctl, pole=pole, lat=lat, lon=lon, owner=owner, accept_position=accept_position
        )
        rep.line(
            f"    pole {pole} in the registry"
            + (" (position checked)" if p is not None and lat is not None else "")
            if p is not None
            else f"    pole {pole} is new: provision registers it"
        )

    try:
        run_step("controller", connect_controller)
        assert ctl is not None
        if image:

            def do_flash() -> None:
                from fieldtools.build import load_board

                _p, bdef = load_board(board)
                steps.run_flash(
                    steps.flash_commands(find_port(port), image, steps.chip_for_board(bdef)), rep
                )

            run_step("flash", do_flash)
            time.sleep(2)  # the board reboots into MicroPython
        link: NodeLink | None = None

        def do_deploy() -> dict[str, Any]:
            nonlocal link
            link = NodeLink(find_port(port), soft_reset=soft_reset)
            return steps.deploy(link, board, rep)

        try:
            dep = run_step("deploy", do_deploy)
            assert link is not None
            info = steps.identify(link)  # now with firmware and board.json
            rec["hardware_id"] = info.get("hardware_id")
            rec["board"] = dep["board"]
            rec["firmware"] = {
                "version": dep["version"],
                "hash": dep["hash"],
                "files": dep["files"],
                "micropython": f"{info.get('version')} ({info.get('machine')})",
            }
            prov = run_step(
                "provision",
                lambda: steps.provision(
                    link,
                    ctl,
                    rep,
                    pole=pole,
                    node=node,
                    lat=lat,
                    lon=lon,
                    sensors=_split(sensors),
                    wifi_ssid=wifi_ssid,
                    wifi_password=wifi_password,
                    broker=broker,
                    owner=owner,
                    accept_position=accept_position,
                    info=info,
                    replace=replace,
                ),
            )
            rec["location"] = prov["location"]
            rec["registry_node_id"] = prov["registry_id"]
            rec["modules"] = prov["modules"]
            results = run_step("selftest", lambda: _selftest(link, rep, broker_check, rec, prov))
        finally:
            if link is not None:
                link.close()
        del results

        def do_record() -> None:
            rec["status"] = "commissioned"
            rec.pop("failed_step", None)
            steps.write_record(path, rec)
            assert ctl is not None
            out = ctl.request("POST", "/api/commissioning", json=rec)
            rec["controller_record_id"] = out["id"]
            steps.write_record(path, rec)
            rep.line(f"    record {out['id']} stored by the controller; file {path}")

        run_step("record", do_record)
    finally:
        if ctl is not None:
            ctl.close()
    total = sum(s["seconds"] for s in rec["steps"])
    rep.line(f"commissioned {pole}/{node} in {total:.0f} s")


def _selftest(
    link: NodeLink, rep: Reporter, broker_check: bool, rec: dict[str, Any], prov: dict[str, Any]
) -> list[dict[str, Any]]:
    results = steps.selftest(link, rep, broker_check, fail=False)
    types = prov["sensor_types"]
    by_name = {r["name"]: r for r in results}
    rec["sensors"] = [
        {"name": s, "type": types.get(s, ""), **{k: by_name[s][k] for k in ("ok", "reason")}}
        if s in by_name
        else {"name": s, "type": types.get(s, ""), "ok": None, "reason": "not checked"}
        for s in prov["sensors"]
    ]
    rec["selftest"] = {
        "checks": len(results),
        "failed": sum(1 for r in results if not r["ok"]),
        "results": results,
    }
    if rec["selftest"]["failed"]:
        raise steps.selftest_error(results)
    return results


@node_app.command("send-record")
def send_record(
    record: Path = RECORD_ARG,
    controller: str = CONTROLLER,
    token: str | None = TOKEN,
) -> None:
    """Send a record written while the controller was out of reach."""

    def go() -> None:
        rec = json.loads(record.read_text())
        if rec.get("status") != "commissioned":
            raise FieldError("usage", f"{record} is a failed attempt; only commissioned records go")
        ctl = Controller(controller, token)
        try:  # the controller keeps one record per commissioning: sending it again is safe
            out = ctl.request("POST", "/api/commissioning", json=rec)
        finally:
            ctl.close()
        if rec.get("controller_record_id") == out["id"]:
            typer.echo(f"record {out['id']} was stored by the controller already")
            return
        rec["controller_record_id"] = out["id"]
        steps.write_record(record, rec)
        typer.echo(f"record {out['id']} stored by the controller")

    guarded(go)


@node_app.command(short_help="A virtual node for practice (MicroPython on a pty).")
def virtual(
    flash_dir: Path = FLASH_OPT,
    heap: str = typer.Option("256k", help="MicroPython heap (the self-test needs ~160k on x64)"),
    fault: list[str] = FAULT_OPT,
    run: bool = typer.Option(
        False, "--run", help="power it on: run main.py as after EN, until Ctrl-C (no REPL)"
    ),
) -> None:
    """Start a virtual node for training: MicroPython on a serial device, sensors simulated.
    With --run, the commissioned node starts as after EN or a power cycle and comes online."""
    from fieldtools.snippets import SIM_RIG, rig_json
    from fieldtools.virtual_node import VirtualNode

    flash_dir = flash_dir.resolve()
    flash_dir.mkdir(parents=True, exist_ok=True)
    (flash_dir / "sim_rig.py").write_text(SIM_RIG)
    faults = dict(f.split("=", 1) for f in fault)
    rig = flash_dir / "rig.json"
    try:  # the faults of this start; the hardware id the node was provisioned with stays
        hardware_id = json.loads(rig.read_text()).get("hardware_id")
    except (OSError, ValueError):
        hardware_id = None
    rig.write_bytes(rig_json(faults, hardware_id))
    vn = VirtualNode(flash_dir, heap=heap)
    if run:
        missing = [f for f in ("board.json", "node.json") if not (flash_dir / f).exists()]
        if missing:
            typer.echo(
                f"error: no {' or '.join(missing)} in {flash_dir}: deploy and provision (or "
                "commission) the virtual node first, then --run",
                err=True,
            )
            raise typer.Exit(EXIT["node"])
        typer.echo(f"virtual node {flash_dir} powered on (main.py); Ctrl-C stops it")
        _power(vn)
        return
    vn.start()
    typer.echo(f"virtual node on {vn.tty} (flash {flash_dir}); Ctrl-C stops it. Try:")
    typer.echo(f"  streetpole node deploy --port {vn.tty} --board sim")
    typer.echo(f"then, once commissioned: streetpole node virtual --flash {flash_dir} --run")
    try:
        while vn._proc is not None and vn._proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        vn.stop()


def _power(vn: VirtualNode) -> None:
    """Run the node until Ctrl-C or SIGTERM (which end the node too), again after a reset."""
    import signal

    from fieldtools.virtual_node import RESET_EXIT
    from hostlib.process import terminate

    def stop(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    proc = None
    try:
        while True:
            proc = vn.power_on()
            code = proc.wait()
            if code != RESET_EXIT:
                raise typer.Exit(code)
            typer.echo("(the node reset itself: starting again)")
    except KeyboardInterrupt:
        pass
    finally:
        if proc is not None:
            terminate(proc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(node_app())
