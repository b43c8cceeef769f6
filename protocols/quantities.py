"""What a node may measure: names from FIWARE Smart Data Models, units from SenML / UCUM.

Each entry: name -> (unit, lowest plausible, highest plausible). The range is a
plausibility bound enforced by the codec (a value outside it is a driver bug or a broken sensor,
which the node reports as a fault instead), not a measuring range.
"""

QUANTITIES = {
    # air quality (FIWARE AirQualityObserved)
    "pm1": ("ug/m3", 0, 2000),  # particulate matter < 1 um, mass concentration
    "pm25": ("ug/m3", 0, 2000),  # particulate matter < 2.5 um, mass concentration
    "pm10": ("ug/m3", 0, 2000),  # particulate matter < 10 um, mass concentration
    "no2": ("ug/m3", -50, 2000),  # nitrogen dioxide, calibrated (may dip below 0 from noise)
    "no2WE": ("mV", -5000, 5000),  # NO2 cell working electrode, raw
    "no2AE": ("mV", -5000, 5000),  # NO2 cell auxiliary electrode, raw
    "temperature": ("Cel", -50, 90),  # air temperature
    "relativeHumidity": ("%RH", 0, 100),  # relative humidity
    "atmosphericPressure": ("hPa", 300, 1100),  # air pressure
    # noise (FIWARE NoiseLevelObserved), A-weighted, indicative class
    "LAeq": ("dB", 0, 150),  # A-weighted equivalent level over dur
    "LAmax": ("dB", 0, 150),  # maximum fast (125 ms) A-weighted level over dur
    "LAmin": ("dB", 0, 150),  # minimum fast (125 ms) A-weighted level over dur
    "LA10": ("dB", 0, 150),  # A-weighted level exceeded 10% of dur
    "LA90": ("dB", 0, 150),  # A-weighted level exceeded 90% of dur
    # motion: counts, never identifiers
    "presenceCount": ("count", 0, 100000),  # presence detections over dur
    # lighting (FIWARE Streetlight)
    "illuminanceLevel": ("/", 0, 1),  # light output, fraction of full (mean over dur)
    "powerConsumption": ("W", 0, 5000),  # active power of the lamp
    "energyConsumed": ("Wh", 0, 1000000),  # lamp energy over dur
    "lampCurrent": ("A", 0, 30),  # lamp supply current
}

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
