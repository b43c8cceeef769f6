"""The SensorThings entity types as Streetpole maps them, as data.

Thing = pole; Location, HistoricalLocation and FeatureOfInterest = the pole's (published)
position; Datastream = one open module's quantity, a store stream; Sensor = the module's sensor
type; ObservedProperty = a quantity; Observation = a stored reading.

Every type but Observation lives in the catalog (an in-memory SQLite database rebuilt from the
registry, holding only what may be published); Observations stay in the time-series store. Each
property maps to an SQL expression over the type's table (``{a}`` is the table's alias);
navigation properties carry the join condition between source ``{s}`` and target ``{t}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OBS_ID_BASE = 10_000_000_000  # Observation @iot.id = stream id * OBS_ID_BASE + ts


@dataclass(frozen=True)
class Nav:
    target: str  # entity type name
    many: bool
    link: str = ""  # SQL condition over {s} (source) and {t} (target); "" for the store


@dataclass(frozen=True)
class EntityType:
    name: str
    plural: str
    table: str  # catalog table; "" for Observation (store)
    props: dict[str, str]  # property (or path inside a complex property) -> SQL over {a}
    navs: dict[str, Nav]
    times: frozenset[str] = frozenset()  # properties holding epoch seconds
    geo: dict[str, tuple[str, str]] = field(default_factory=dict)  # property -> (lon, lat) SQL
    json_props: frozenset[str] = frozenset()  # JSON text columns (properties/...)
    string_id: bool = True
    # what other properties hold, where a database needs to know (num, or text: a text column)
    kinds: dict[str, str] = field(default_factory=dict)


def _p(*names: str, **extra: str) -> dict[str, str]:
    out = {"@iot.id": "{a}.id", "id": "{a}.id"}
    out |= {n: "{a}." + n for n in names}
    out |= extra
    return out


TYPES: dict[str, EntityType] = {
    t.name: t
    for t in (
        EntityType(
            "Thing",
            "Things",
            "things",
            _p("name", "description", "properties"),
            {
                "Locations": Nav("Location", True, "{t}.id = {s}.id"),
                "HistoricalLocations": Nav("HistoricalLocation", True, "{t}.thing_id = {s}.id"),
                "Datastreams": Nav("Datastream", True, "{t}.thing_id = {s}.id"),
            },
            json_props=frozenset({"properties"}),
        ),
        EntityType(
            "Location",
            "Locations",
            "locations",
            _p("name", "description", "properties", encodingType="{a}.encoding_type"),
            {
                "Things": Nav("Thing", True, "{t}.id = {s}.id"),
                "HistoricalLocations": Nav("HistoricalLocation", True, "{t}.thing_id = {s}.id"),
            },
            geo={"location": ("{a}.lon", "{a}.lat")},
            json_props=frozenset({"properties"}),
        ),
        EntityType(
            "HistoricalLocation",
            "HistoricalLocations",
            "historical_locations",
            _p(time="{a}.time"),
            {
                "Thing": Nav("Thing", False, "{t}.id = {s}.thing_id"),
                "Locations": Nav("Location", True, "{t}.id = {s}.thing_id"),
            },
            times=frozenset({"time"}),
        ),
        EntityType(
            "Datastream",
            "Datastreams",
            "datastreams",
            _p(
                "name",
                "description",
                "properties",
                observationType="{a}.observation_type",
                phenomenonTime="{a}.phen_end",
                resultTime="{a}.phen_end",
                **{
                    "unitOfMeasurement/name": "{a}.unit_name",
                    "unitOfMeasurement/symbol": "{a}.unit_symbol",
                    "unitOfMeasurement/definition": "{a}.unit_definition",
                },
            ),
            {
                "Thing": Nav("Thing", False, "{t}.id = {s}.thing_id"),
                "Sensor": Nav("Sensor", False, "{t}.id = {s}.sensor_id"),
                "ObservedProperty": Nav("ObservedProperty", False, "{t}.id = {s}.op_id"),
                "Observations": Nav("Observation", True),
            },
            times=frozenset({"phenomenonTime", "resultTime"}),
            geo={"observedArea": ("{a}.lon", "{a}.lat")},
            json_props=frozenset({"properties"}),
            string_id=False,
        ),
        EntityType(
            "Sensor",
            "Sensors",
            "sensors",
            _p("name", "description", "properties", "metadata", encodingType="{a}.encoding_type"),
            {"Datastreams": Nav("Datastream", True, "{t}.sensor_id = {s}.id")},
            json_props=frozenset({"properties"}),
        ),
        EntityType(
            "ObservedProperty",
            "ObservedProperties",
            "observed_properties",
            _p("name", "description", "definition", "properties"),
            {"Datastreams": Nav("Datastream", True, "{t}.op_id = {s}.id")},
            json_props=frozenset({"properties"}),
        ),
        EntityType(
            "FeatureOfInterest",
            "FeaturesOfInterest",
            "features",
            _p("name", "description", "properties", encodingType="{a}.encoding_type"),
            {"Observations": Nav("Observation", True)},
            geo={"feature": ("{a}.lon", "{a}.lat")},
            json_props=frozenset({"properties"}),
        ),
        EntityType(
            "Observation",
            "Observations",
            "",
            {
                "@iot.id": f"(stream * {OBS_ID_BASE} + ts)",
                "id": f"(stream * {OBS_ID_BASE} + ts)",
                "phenomenonTime": "ts",
                "resultTime": "ts",
                "result": "v",
                "resultQuality": "flags",
                "validTime": "NULL",
                "parameters": "NULL",
            },
            {
                "Datastream": Nav("Datastream", False, "{t}.id = {s}.stream"),
                "FeatureOfInterest": Nav("FeatureOfInterest", False),
            },
            times=frozenset({"phenomenonTime", "resultTime", "validTime"}),
            string_id=False,
            kinds={"result": "num", "resultQuality": "text"},
        ),
    )
}

BY_PLURAL = {t.plural: t for t in TYPES.values()}

# Properties each type renders (in this order) when there is no $select.
RENDERED: dict[str, tuple[str, ...]] = {
    "Thing": ("name", "description", "properties"),
    "Location": ("name", "description", "encodingType", "location", "properties"),
    "HistoricalLocation": ("time",),
    "Datastream": (
        "name",
        "description",
        "observationType",
        "unitOfMeasurement",
        "observedArea",
        "phenomenonTime",
        "resultTime",
        "properties",
    ),
    "Sensor": ("name", "description", "encodingType", "metadata", "properties"),
    "ObservedProperty": ("name", "definition", "description", "properties"),
    "FeatureOfInterest": ("name", "description", "encodingType", "feature", "properties"),
    "Observation": (
        "phenomenonTime",
        "resultTime",
        "result",
        "resultQuality",
        "validTime",
        "parameters",
    ),
}
