"""Scenario files: when the run starts, how busy the streets are, the dimming profile, and the
faults, all repeatable from a seed. JSON (always) or YAML (when PyYAML is installed)::

    {"seed": 7, "start": "2026-11-20T16:00:00Z", "duration_s": 43200, "traffic": 1.0,
     "profile": {"presence": {"level": 1.0, "hold_s": 60, "neighbour_level": 0.7}},
     "faults": [
       {"at_s": 1800, "kind": "offline", "pole": "SIM-0003", "duration_s": 900},
       {"at_s": 3600, "kind": "sensor", "pole": 4, "sensor": "pm", "mode": "stuck"},
       {"at_s": 5400, "kind": "lamp", "pole": "SIM-0007"},
       {"random": "offline", "count": 2, "duration_s": 600, "between_s": [0, 7200]}]}

Times are simulated seconds from the start. ``pole`` is an id or a 0-based index. Fault kinds:
``offline`` (the node loses its network: the broker publishes its last will, the node buffers
and comes back), ``outage`` (the same for the whole street at once: the broker unreachable; no
``pole``), ``sensor`` (``sensor``: pir, pm or climate; ``mode``: dead, stuck, noisy, or for pm and
climate crc or truncate: corrupted frames), ``lamp`` (the lamp fails: no current although
switched on), ``power`` (a power cut: the node dies without a goodbye, the lamp goes dark, and
it boots again when the power is back; a RAM buffer is lost), ``skew`` (the node's wall clock is
``value`` seconds off), ``net`` (``mode`` loss: that share ``value`` of the PUBACKs to the node
is lost, so it resends; ``mode`` delay: every packet to the node is ``value`` real ms late),
``bad_image`` (the next firmware the node stages is corrupted on flash after its check, so it
does not boot: needs a flash directory). Without ``duration_s`` a fault stays. A
``random`` entry draws ``count`` faults of that kind on random poles at random times with the
scenario's seed. ``service_level`` (default: the presence level) and ``service_target`` (0.95)
set what the report checks: the share of pedestrians and cyclists who, passing a pole after
dark, found its light at that level.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("offline", "sensor", "lamp", "power", "skew", "net", "outage", "bad_image")
SENSORS = ("pir", "pm", "climate")
MODES = ("dead", "stuck", "noisy", "crc", "truncate")
NET_MODES = ("loss", "delay")


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Fault:
    at_s: float
    pole: int
    kind: str
    duration_s: float | None = None
    sensor: str = ""
    mode: str = ""
    value: float = 0.0


@dataclass
class Scenario:
    seed: int = 1
    start: float | None = None  # UTC epoch seconds; None: now
    duration_s: float | None = None
    traffic: float = 1.0
    service_level: float | None = None  # light a passer-by should find (default: presence)
    service_target: float = 0.95  # share of passers-by in the dark who should find it
    profile: dict[str, Any] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    raw_faults: list[dict[str, Any]] = field(default_factory=list)

    def resolve(self, pole_ids: list[str]) -> list[Fault]:
        """Concrete faults (random ones drawn with the seed), sorted by time."""
        rng = random.Random(self.seed * 1_000_003 + 11)
        out: list[Fault] = []
        for i, f in enumerate(self.raw_faults):
            where = f"faults[{i}]"
            if "random" in f:
                kind = _kind(f["random"], where)
                lo, hi = (float(x) for x in f.get("between_s", (0, 3600)))
                for _ in range(int(f.get("count", 1))):
                    out.append(
                        Fault(
                            round(rng.uniform(lo, hi), 1),
                            rng.randrange(len(pole_ids)),
                            kind,
                            _dur(f),
                            f.get("sensor", rng.choice(SENSORS)) if kind == "sensor" else "",
                            f.get("mode", rng.choice(MODES[:2])) if kind == "sensor" else "",
                            float(f.get("value", 0.0)),
                        )
                    )
                continue
            kind = _kind(f.get("kind"), where)
            if "at_s" not in f or ("pole" not in f and kind != "outage"):
                raise ScenarioError(f"{where}: needs at_s and pole")
            sensor = mode = ""
            value = 0.0
            if kind == "sensor":
                sensor, mode = f.get("sensor", ""), f.get("mode", "dead")
                if sensor not in SENSORS:
                    raise ScenarioError(f"{where}.sensor: one of {', '.join(SENSORS)}")
                if mode not in MODES:
                    raise ScenarioError(f"{where}.mode: one of {', '.join(MODES)}")
            elif kind == "net":
                mode = f.get("mode", "loss")
                if mode not in NET_MODES:
                    raise ScenarioError(f"{where}.mode: one of {', '.join(NET_MODES)}")
                value = _num(f, "value", where)
                if mode == "loss" and not 0 <= value <= 1:
                    raise ScenarioError(f"{where}.value: a share of PUBACKs lost, 0..1")
            elif kind == "skew":
                value = _num(f, "value", where)
            pole = 0 if kind == "outage" else _pole(f["pole"], pole_ids, where)
            out.append(Fault(float(f["at_s"]), pole, kind, _dur(f), sensor, mode, value))
        return sorted(out)


def _kind(v: Any, where: str) -> str:
    if v not in KINDS:
        raise ScenarioError(f"{where}.kind: one of {', '.join(KINDS)}")
    return str(v)


def _num(f: dict[str, Any], key: str, where: str) -> float:
    try:
        return float(f[key])
    except (KeyError, TypeError, ValueError):
        raise ScenarioError(f"{where}.{key}: a number is needed") from None


def _dur(f: dict[str, Any]) -> float | None:
    return float(f["duration_s"]) if f.get("duration_s") is not None else None


def _pole(v: Any, ids: list[str], where: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        if 0 <= v < len(ids):
            return v
    elif v in ids:
        return ids.index(v)
    raise ScenarioError(f"{where}.pole: {v!r} is not a pole of this street")


def parse_time(v: Any) -> float:
    if isinstance(v, int | float):
        return float(v)
    t = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def from_dict(d: dict[str, Any]) -> Scenario:
    if not isinstance(d, dict):
        raise ScenarioError("scenario: must be an object")
    faults = d.get("faults", [])
    if not isinstance(faults, list):
        raise ScenarioError("faults: must be a list")
    return Scenario(
        seed=int(d.get("seed", 1)),
        start=parse_time(d["start"]) if d.get("start") is not None else None,
        duration_s=float(d["duration_s"]) if d.get("duration_s") is not None else None,
        traffic=float(d.get("traffic", 1.0)),
        service_level=float(d["service_level"]) if d.get("service_level") is not None else None,
        service_target=float(d.get("service_target", 0.95)),
        profile=dict(d.get("profile", {})),
        raw_faults=[dict(f) for f in faults],
    )


def load(path: Path) -> Scenario:
    text = Path(path).read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML is not a declared dependency
            raise ScenarioError(f"{path}: YAML needs PyYAML; use the JSON form") from None
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    return from_dict(data)
