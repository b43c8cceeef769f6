"""The one table of quantities for people and APIs (protocols/quantity_info.py) against the
node's table (protocols/quantities.py), and as /opendata/quantities.json serves it."""

from __future__ import annotations

import math

from protocols.quantities import QUANTITIES
from protocols.quantity_info import INFO, api_round, as_json

# The protocol's unit strings that are not UCUM, and the UCUM code that means the same.
NOT_UCUM = {"%RH": "%", "/": "1", "count": "{count}", "Wh": "W.h"}


def test_both_tables_name_the_same_quantities() -> None:
    assert list(INFO) == list(QUANTITIES)


def test_each_api_unit_is_the_protocols_unit_in_ucum() -> None:
    for name, (unit, _lo, _hi) in QUANTITIES.items():
        assert INFO[name].unit.ucum == NOT_UCUM.get(unit, unit), name


def test_every_quantity_has_names_a_definition_and_a_symbol_for_people() -> None:
    for q in INFO.values():
        assert q.en and q.nl and q.en != q.name, q.name
        assert q.definition.startswith("https://"), q.name
        assert q.unit.name
        if q.name != "presenceCount":  # a count has no unit symbol
            assert q.shown_symbol, q.name
        assert "ug" not in q.unit.symbol and "Cel" not in q.unit.symbol


def test_the_light_level_is_a_fraction_shown_as_percent() -> None:
    light = INFO["illuminanceLevel"]
    assert light.unit.ucum == "1" and light.display_scale == 100
    assert light.shown_symbol == "%"
    assert light.api_decimals == light.decimals + 2 + 2  # x100 shown, 2 kept beyond it


def test_who_guidelines() -> None:
    def g(q: str) -> dict[str, float]:
        return {x.period: x.value for x in INFO[q].guidelines}

    assert g("pm25") == {"24h": 15, "year": 5}
    assert g("pm10") == {"24h": 45, "year": 15}
    assert g("no2") == {"24h": 25, "year": 10}
    assert g("LAeq") == {"Lden": 53, "Lnight": 45}
    assert g("temperature") == {}


def test_api_round_removes_float_noise() -> None:
    noisy = 0.1 + 0.2  # 0.30000000000000004
    assert noisy != 0.3
    assert api_round("pm25", noisy) == 0.3
    assert api_round("illuminanceLevel", 0.62712345) == 0.6271
    assert api_round("pm25", None) is None
    assert api_round("unknown", math.pi) == 3.141593


def test_the_json_is_keyed_by_name_in_table_order() -> None:
    body = as_json()
    qs = body["quantities"]
    assert list(qs) == list(QUANTITIES)
    pm = qs["pm25"]
    assert (pm["unit"], pm["symbol"], pm["nl"]) == ("ug/m3", "µg/m³", "Fijnstof PM2,5")
    assert pm["guidelines"][0]["source"].startswith("WHO")
    assert qs["illuminanceLevel"]["display"] == {"scale": 100, "symbol": "%", "decimals": 0}
