"""What a node may measure: names from FIWARE Smart Data Models, units from SenML / UCUM.

Each entry: name -> (unit, lowest plausible, highest plausible). The range is a
plausibility bound enforced by the codec (a value outside it is a driver bug or a broken sensor,
which the node reports as a fault instead), not a measuring range.
"""

import sys

# One line per quantity, "name unit lowest highest", in one string: the node keeps it in flash
# (ROMFS) where a dict of tuples would take room in its heap (docs/firmware.md); ``plausible``
# looks a name up.
_TABLE = (
    "\n"
    # air quality (FIWARE AirQualityObserved)
    "pm1 ug/m3 0 2000\n"  # particulate matter < 1 um, mass concentration
    "pm25 ug/m3 0 2000\n"  # particulate matter < 2.5 um, mass concentration
    "pm10 ug/m3 0 2000\n"  # particulate matter < 10 um, mass concentration
    "no2 ug/m3 -50 2000\n"  # nitrogen dioxide, calibrated (may dip below 0 from noise)
    "no2WE mV -5000 5000\n"  # NO2 cell working electrode, raw
    "no2AE mV -5000 5000\n"  # NO2 cell auxiliary electrode, raw
    "temperature Cel -50 90\n"  # air temperature
    "relativeHumidity %RH 0 100\n"  # relative humidity
    "atmosphericPressure hPa 300 1100\n"  # air pressure
    # noise (FIWARE NoiseLevelObserved), A-weighted, indicative class
    "LAeq dB 0 150\n"  # A-weighted equivalent level over dur
    "LAmax dB 0 150\n"  # maximum fast (125 ms) A-weighted level over dur
    "LAmin dB 0 150\n"  # minimum fast (125 ms) A-weighted level over dur
    "LA10 dB 0 150\n"  # A-weighted level exceeded 10% of dur
    "LA90 dB 0 150\n"  # A-weighted level exceeded 90% of dur
    # motion: counts, never identifiers
    "presenceCount count 0 100000\n"  # presence detections over dur
    # lighting (FIWARE Streetlight)
    "illuminanceLevel / 0 1\n"  # light output, fraction of full (mean over dur)
    "powerConsumption W 0 5000\n"  # active power of the lamp
    "energyConsumed Wh 0 1000000\n"  # lamp energy over dur
    "lampCurrent A 0 30\n"  # lamp supply current
)


def _find(name):
    i = _TABLE.find("\n" + name + " ")
    if i < 0:
        return None
    unit, lo, hi = _TABLE[i + 1 : _TABLE.find("\n", i + 1)].split()[1:]
    return unit, int(lo), int(hi)


if sys.implementation.name == "micropython":
    plausible = _find  # (unit, lowest, highest) of a quantity, or None
else:  # the controller checks every reading it takes in: a dict is ~50x faster
    QUANTITIES = {n: _find(n) for n in (line.split()[0] for line in _TABLE.split("\n") if line)}
    plausible = QUANTITIES.get

# Flags a reading may carry. A flagged reading is still a measurement; consumers decide.
FLAGS = (
    "humidity_high",  # PM at high humidity reads high (hygroscopic growth)
    "warming_up",  # sensor still inside its warm-up window
    "indicative",  # low-cost, not a type-approved instrument (noise: always set)
    "overload",  # microphone or ADC clipped during dur
    "below_floor",  # level under the microphone's noise floor
    "uncalibrated",  # default calibration constants in use
    "estimated",  # derived from level and rated power, not metered
    "partial",  # fewer samples than expected in dur
)
