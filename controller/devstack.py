"""`make run`: a broker and the controller on this machine, with data in var/.

Starts mosquitto with per-node accounts (password and ACL files kept by the controller, which
signals the broker through its pid file), then the controller; creates a first admin account
when there is none and prints its login; then a simulated street (``python -m simulator``:
``SIM_POLES`` poles, default 20, of the Rotterdam-Zuid sample at ``SIM_SPEED``, default 1,
provisioned through the API with a token for the admin account; ``SIM_POLES=0`` for none). Stops
everything on Ctrl-C.

The street speaks MQTT over TLS (``MQTTS_PORT``, default 8883): a throwaway CA is made at every
start (controller/devpki.py, in var/pki) and its certificate handed to the nodes by provisioning,
so they verify the broker as a deployed node does. The controller stays on the plaintext listener
on loopback. ``MQTT_TLS=0`` runs the street in plaintext, for development only, and says so.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from controller.broker import Broker, BrokerConfig
from controller.devpki import Authority, write_server_files
from controller.mqtt_auth import ROLE_CONTROLLER, MqttAccounts, controller_usernames, hash_password
from controller.registry.accounts import create_token, create_user, has_admin
from controller.registry.db import Registry
from controller.registry.models import Node


def _secret(path: Path) -> str:
    """A password kept in var/ so a restart keeps working with what was set up before."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def _wait_until_ready(base: str, registry_url: str, poles: int, deadline_s: float = 60) -> str:
    """Wait until the street's nodes are online (read in the registry, so the waiting writes no
    access log) and the controller is ready, so the summary and the first login, printed last,
    are not scrolled away by the provisioning's access log. Returns what to add to the
    headline when it did not get there in time."""
    end = time.monotonic() + deadline_s
    online = 0
    reg = Registry(registry_url)
    try:
        while poles and time.monotonic() < end:
            with reg.session() as db:
                online = db.scalar(select(func.count()).where(Node.status == "online")) or 0
            if online >= poles:
                break
            time.sleep(1)
    finally:
        reg.close()
    try:
        ready = httpx.get(base + "/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        ready = False
    notes = [] if ready else ["not ready yet: see /readyz"]
    if online < poles:
        notes.append(f"{online} of {poles} simulated nodes online so far, the rest follow")
    return f" ({'; '.join(notes)})" if notes else ""


def main() -> int:
    var = Path(os.environ.get("STREETPOLE_DATA_DIR", "var")).resolve()
    mqtt_port = int(os.environ.get("MQTT_PORT", "1883"))
    http_port = int(os.environ.get("PORT", "8000"))
    auth = var / "broker-auth"
    ctl_password = _secret(var / "secrets" / "controller-mqtt")
    accounts = MqttAccounts(auth)
    ctl_hash = hash_password(ctl_password)
    ingest_processes = int(os.environ.get("STREETPOLE_INGEST_PROCESSES", "1"))
    for username in controller_usernames("controller", ingest_processes):
        accounts.set_service(username, ctl_hash, ROLE_CONTROLLER)
    accounts.write()
    pid_file = var / "broker" / "mosquitto.pid"
    config = BrokerConfig(
        port=mqtt_port,
        persistence_dir=var / "broker",
        password_file=accounts.password_file,
        acl_file=accounts.acl_file,
        pid_file=pid_file,
    )
    tls = os.environ.get("MQTT_TLS", "1") != "0"
    node_env: dict[str, str] = {}
    if tls:
        files = write_server_files(var / "pki", Authority("Streetpole make-run CA (throwaway)"))
        config.tls_port = int(os.environ.get("MQTTS_PORT", "8883"))
        config.cafile, config.certfile, config.keyfile = files.ca, files.cert, files.key
        node_url = f"mqtts://{config.host}:{config.tls_port}"
        node_env = {"STREETPOLE_NODE_MQTT_URL": node_url, "STREETPOLE_NODE_CA_FILE": str(files.ca)}
        mqtt_line = (
            f"{node_url}  (nodes; TLS with a throwaway CA, {files.ca}, new at every start)\n"
            f"                    mqtt://{config.host}:{mqtt_port}  (the controller, loopback)"
        )
    else:
        node_url = f"mqtt://{config.host}:{mqtt_port}"
        mqtt_line = f"{node_url}  PLAINTEXT (MQTT_TLS=0): node passwords cross the network readable"
        print(
            "WARNING: MQTT_TLS=0: the street speaks plaintext MQTT; development only, never on a "
            "network others can reach",
            file=sys.stderr,
            flush=True,
        )
    broker = Broker(var / "broker", config)
    broker.start()
    registry_url = os.environ.get("STREETPOLE_DATABASE_URL", f"sqlite:///{var / 'registry.db'}")
    reg = Registry(registry_url)
    login = ""
    if not has_admin(reg):
        pw = secrets.token_urlsafe(12)
        create_user(reg, "admin", pw, "admin")
        login = pw
    sim_poles = int(os.environ.get("SIM_POLES", "20"))
    sim_token = ""
    if sim_poles > 0:
        try:
            sim_token = create_token(reg, "admin", "simulator", days=1)
        except Exception as e:  # no account called admin (renamed): run without a street
            print(f"no simulated street: {e}", file=sys.stderr)
    reg.close()
    env = dict(
        os.environ,
        STREETPOLE_MQTT_URL=broker.url,
        STREETPOLE_DATA_DIR=str(var),
        STREETPOLE_DATABASE_URL=registry_url,
        STREETPOLE_MQTT_USERNAME="controller",
        STREETPOLE_MQTT_PASSWORD=ctl_password,
        STREETPOLE_BROKER_AUTH_DIR=str(auth),
        STREETPOLE_BROKER_PID_FILE=str(pid_file),
        STREETPOLE_PUBLIC_URL=f"http://127.0.0.1:{http_port}",
        **node_env,
    )
    ctl = subprocess.Popen(
        [sys.executable, "-m", "controller", "serve", "--port", str(http_port)], env=env
    )
    base = f"http://127.0.0.1:{http_port}"
    sim: subprocess.Popen[bytes] | None = None
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        for _ in range(150):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        street = ""
        if sim_token:
            speed = os.environ.get("SIM_SPEED", "1")
            report = var / "sim-report.html"
            sim = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "simulator",
                    "--poles",
                    str(sim_poles),
                    "--layout",
                    str(
                        Path(__file__).resolve().parent.parent
                        / "simulator/data/rotterdam-zuid.geojson"
                    ),
                    "--prefix",
                    "RZ-",
                    "--broker",
                    node_url,
                    "--api",
                    base,
                    "--speed",
                    speed,
                    "--html",
                    str(report),
                    "--micropython",  # one pole as a real MicroPython process, beside the rest
                    os.environ.get("SIM_MICROPYTHON", "1"),
                ],
                # the token in the environment, not the command line (readable by anyone in ps)
                env=dict(os.environ, STREETPOLE_TOKEN=sim_token),
            )
            street = (
                f"  simulated street  {sim_poles} poles of simulator/data/rotterdam-zuid.geojson "
                f"at {speed}x (python -m simulator; report on Ctrl-C, chart in {report})\n"
            )
        ready = _wait_until_ready(base, registry_url, sim_poles if sim else 0)
        reset = "`.venv/bin/streetpole create-user admin` sets a new admin password"
        if login:
            first = f"admin / {login}\n                    (lost it? {reset})"
        else:
            first = (
                f"admin, with the password printed at the first start\n"
                f"                    (lost it? {reset})"
            )
        print(
            f"""
Streetpole is running, data in {var}{ready}:
  dashboard         {base}/dashboard   (log in as admin)
  public portal     {base}/portal
  open data         {base}/opendata    SensorThings {base}/sta/v1.1
  operator API      {base}/docs  (reference of the API under /api)
  health, metrics   {base}/readyz  {base}/metrics
  MQTT broker       {mqtt_line}
                    (per-node accounts; log: {broker.log_file})
{street}Ctrl-C stops everything.

  first login       {first}
""",
            flush=True,
        )
        ctl.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if sim is not None:
            sim.send_signal(signal.SIGINT)  # the street prints its report and disconnects
            try:
                sim.wait(30)
            except subprocess.TimeoutExpired:
                sim.kill()
        ctl.terminate()
        try:
            ctl.wait(10)
        except subprocess.TimeoutExpired:
            ctl.kill()
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
