"""What each quantity is, for people and for APIs: names (English, Dutch), unit, how to show it,
its definition and, where one exists, a health guideline. CPython only (controller, dashboard,
portal, open-data APIs); the node keeps its own lean table, protocols/quantities.py, keyed by the
same names (tests/test_quantity_info.py holds the two together).

Units: every API serves a value in ``unit`` (a UCUM code, the machine unit) with ``symbol``
(the same unit as people write it). The protocol's own unit strings (``%RH``, ``/``, ``count``)
are not UCUM and never leave the controller. ``display_*`` say how a page shows a value: the
light level is a fraction 0..1 in every API and "62 %" on a page (value x ``display_scale``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WHO_AIR = "WHO global air quality guidelines (2021)"
WHO_AIR_URL = "https://www.who.int/publications/i/item/9789240034228"
WHO_NOISE = "WHO environmental noise guidelines for the European Region (2018), road traffic"
WHO_NOISE_URL = "https://www.who.int/europe/publications/i/item/9789289053563"
SDM = "https://smartdatamodels.org/dataModel."
AIR = SDM + "Environment/AirQualityObserved#"
NOISE = SDM + "Environment/NoiseLevelObserved#"
LIGHT = SDM + "Streetlighting/Streetlight#"
CROWD = SDM + "Transportation/CrowdFlowObserved#"

# Extra decimals an API keeps beyond what a page shows: enough for a consumer's own sums and
# means, few enough that float noise (0.29999999999999993) never reaches an answer.
API_EXTRA_DECIMALS = 2


@dataclass(frozen=True)
class Unit:
    ucum: str  # machine unit (UCUM code), in every API
    symbol: str  # the same unit as people write it
    name: str  # in English words (SensorThings unitOfMeasurement.name)


@dataclass(frozen=True)
class Guideline:
    """A limit a value is judged against, in the quantity's display unit."""

    period: str  # "24h", "year", "Lden", "Lnight"
    value: float
    en: str  # what the period means, for people
    nl: str
    source: str
    url: str


@dataclass(frozen=True)
class QuantityInfo:
    name: str  # the protocol's name (FIWARE Smart Data Models), e.g. "pm25"
    en: str
    nl: str
    group: str  # "air", "noise", "light", "presence", "diagnostic"
    unit: Unit
    decimals: int  # shown on a page, after display_scale
    definition: str  # URI
    display_scale: float = 1.0
    display_symbol: str = ""  # "" means unit.symbol
    guidelines: tuple[Guideline, ...] = ()

    @property
    def shown_symbol(self) -> str:
        return self.display_symbol or self.unit.symbol

    @property
    def api_decimals(self) -> int:
        """Decimals an API rounds a computed value (mean, sum) to."""
        extra = 0
        scale = self.display_scale
        while scale >= 10:  # a value shown x100 needs two more decimals in the API
            scale /= 10
            extra += 1
        return self.decimals + extra + API_EXTRA_DECIMALS


UG = Unit("ug/m3", "µg/m³", "microgram per cubic metre")
DBA = Unit("dB", "dB(A)", "decibel (A-weighted)")
MV = Unit("mV", "mV", "millivolt")


def _day_year(day: float, year: float) -> tuple[Guideline, ...]:
    return (
        Guideline("24h", day, "24-hour mean", "daggemiddelde", WHO_AIR, WHO_AIR_URL),
        Guideline("year", year, "annual mean", "jaargemiddelde", WHO_AIR, WHO_AIR_URL),
    )


ROAD_NOISE = (
    Guideline(
        "Lden",
        53,
        "day-evening-night level, annual average",
        "dag-avond-nachtniveau (Lden), jaargemiddelde",
        WHO_NOISE,
        WHO_NOISE_URL,
    ),
    Guideline(
        "Lnight",
        45,
        "night level (23-07 h), annual average",
        "nachtniveau (23-07 uur), jaargemiddelde",
        WHO_NOISE,
        WHO_NOISE_URL,
    ),
)

_ALL = (
    QuantityInfo(
        "pm1", "Particulate matter PM1", "Fijnstof PM1", "air", UG, 0, AIR + "pm1"
    ),
    QuantityInfo(
        "pm25", "Particulate matter PM2.5", "Fijnstof PM2,5", "air", UG, 0, AIR + "pm25",
        guidelines=_day_year(15, 5),
    ),
    QuantityInfo(
        "pm10", "Particulate matter PM10", "Fijnstof PM10", "air", UG, 0, AIR + "pm10",
        guidelines=_day_year(45, 15),
    ),
    QuantityInfo(
        "no2", "Nitrogen dioxide (NO₂)", "Stikstofdioxide (NO₂)", "air", UG, 0, AIR + "no2",
        guidelines=_day_year(25, 10),
    ),
    QuantityInfo(
        "no2WE", "NO₂ cell, working electrode (raw)", "NO₂-cel, werkelektrode (ruw)",
        "diagnostic", MV, 1, AIR + "no2",
    ),
    QuantityInfo(
        "no2AE", "NO₂ cell, auxiliary electrode (raw)", "NO₂-cel, hulpelektrode (ruw)",
        "diagnostic", MV, 1, AIR + "no2",
    ),
    QuantityInfo(
        "temperature", "Temperature", "Temperatuur", "air",
        Unit("Cel", "°C", "degree Celsius"), 1, AIR + "temperature",
    ),
    QuantityInfo(
        "relativeHumidity", "Relative humidity", "Relatieve luchtvochtigheid", "air",
        Unit("%", "%", "percent"), 0, AIR + "relativeHumidity",
    ),
    QuantityInfo(
        "atmosphericPressure", "Air pressure", "Luchtdruk", "air",
        Unit("hPa", "hPa", "hectopascal"), 0, AIR + "atmosphericPressure",
    ),
    QuantityInfo(
        "LAeq", "Sound level (LAeq)", "Geluidsniveau (LAeq)", "noise", DBA, 1, NOISE + "LAeq",
        guidelines=ROAD_NOISE,
    ),
    QuantityInfo(
        "LAmax", "Loudest sound (LAmax)", "Hoogste geluidsniveau (LAmax)", "noise", DBA, 1,
        NOISE + "LAmax",
    ),
    QuantityInfo(
        "LAmin", "Quietest sound (LAmin)", "Laagste geluidsniveau (LAmin)", "noise", DBA, 1,
        NOISE + "LAmin",
    ),
    QuantityInfo(
        "LA10", "Sound level exceeded 10% of the time (LA10)",
        "Geluidsniveau dat 10% van de tijd wordt overschreden (LA10)", "noise", DBA, 1,
        NOISE + "LA10",
    ),
    QuantityInfo(
        "LA90", "Background sound level (LA90)", "Achtergrondgeluid (LA90)", "noise", DBA, 1,
        NOISE + "LA90",
    ),
    QuantityInfo(
        "presenceCount", "Presence (detections)", "Aanwezigheid (detecties)", "presence",
        Unit("{count}", "", "count"), 0, CROWD + "peopleCount",
    ),
    QuantityInfo(
        "illuminanceLevel", "Light level", "Lichtniveau", "light",
        Unit("1", "1", "fraction of full light output (0 to 1)"), 0, LIGHT + "illuminanceLevel",
        display_scale=100, display_symbol="%",
    ),
    QuantityInfo(
        "powerConsumption", "Lamp power", "Vermogen lamp", "light",
        Unit("W", "W", "watt"), 1, LIGHT + "powerConsumption",
    ),
    QuantityInfo(
        "energyConsumed", "Lamp energy", "Energieverbruik lamp", "light",
        Unit("W.h", "Wh", "watt hour"), 1, LIGHT + "powerConsumption",
    ),
    QuantityInfo(
        "lampCurrent", "Lamp current", "Lampstroom", "light",
        Unit("A", "A", "ampere"), 2, LIGHT + "powerConsumption",
    ),
)  # fmt: skip

INFO: dict[str, QuantityInfo] = {q.name: q for q in _ALL}


def unit_of(name: str) -> Unit | None:
    q = INFO.get(name)
    return q.unit if q else None


def api_round(name: str, value: float | None) -> float | None:
    """A computed value (mean, sum) as an API serves it: rounded to the quantity's
    ``api_decimals`` (unknown quantities keep 6)."""
    if value is None:
        return None
    q = INFO.get(name)
    return round(value, q.api_decimals if q else 6)


def as_json() -> dict[str, Any]:
    """The table as /opendata/quantities.json serves it, keyed by name in table order."""
    return {
        "apiExtraDecimals": API_EXTRA_DECIMALS,
        "quantities": {
            q.name: {
                "name": q.name,
                "en": q.en,
                "nl": q.nl,
                "group": q.group,
                "unit": q.unit.ucum,
                "symbol": q.unit.symbol,
                "unitName": q.unit.name,
                "definition": q.definition,
                "display": {
                    "scale": q.display_scale,
                    "symbol": q.shown_symbol,
                    "decimals": q.decimals,
                },
                "apiDecimals": q.api_decimals,
                "guidelines": [
                    {
                        "period": g.period,
                        "value": g.value,
                        "en": g.en,
                        "nl": g.nl,
                        "source": g.source,
                        "url": g.url,
                    }
                    for g in q.guidelines
                ],
            }
            for q in _ALL
        },
    }
