"""Climate (BME280) and NO2 (electrochemical cell) readings.

Usage::

    from spnode.sensing.air import climate_readings, no2_readings

    rs = climate_readings(bme, ts, 60, "climate")          # temperature, RH, pressure
    rs += no2_readings(cell, ts, 60, "no2", temp_c=t, p_hpa=p)
"""

from spnode.sensing import reading


def climate_readings(bme, ts, dur, src, temp_offset=0.0):
    """Readings from one forced BME280 measurement; [] when the sensor is in fault."""
    if not bme.trigger():
        return []
    v = bme.read()
    if v is None:
        return []
    t, p, h = v
    return [
        reading(ts, "temperature", t + temp_offset, dur, src),
        reading(ts, "relativeHumidity", h, dur, src),
        reading(ts, "atmosphericPressure", p, dur, src),
    ]


def no2_readings(cell, ts, dur, src, temp_c=None, p_hpa=None):
    """Raw WE/AE (mV) and calibrated NO2 (ug/m3); [] when the cell or its ADC is in fault."""
    r = cell.read(temp_c, p_hpa)
    if r is None:
        return []
    flags = None if r["calibrated"] else ["uncalibrated"]
    return [
        reading(ts, "no2WE", r["we_mv"], dur, src),
        reading(ts, "no2AE", r["ae_mv"], dur, src),
        reading(ts, "no2", r["ugm3"], dur, src, flags),
    ]
