"""Every sensor a node lists, fitted to a simulated board: a simulated device behind each one,
healthy and in range, and the lamp's current sense following the lamp. What the MicroPython
poles of the tests, the firmware bench and the street carry (tests/mp/node_run.py,
simulator/mp/street_node.py); the PIR is a pin the caller drives.

Usage::

    from spnode.sim.fitted import fit

    devices = fit(board, ["pm", "climate", "no2", "noise", "pir", "radar"])
    devices["pm"].fault = "silent"                  # the SPS30 stops answering
"""

from spnode.sim.lamp import LampModel

MIC_HZ = 1000  # the microphone hears a 1 kHz tone, 24 samples a period at 24 kHz
MIC_DB = 62.0
NO2_MV = (240.0, 230.0)  # working and auxiliary electrode: a few tens of ppb


def fit(board, sensors):
    """Attach a device for each sensor named in ``sensors`` (the board definition's names) and
    the lamp model; return {sensor name: device}, with "lamp" for the LampModel."""
    bdef = board.bdef
    fitted = {}
    lamp = bdef.get("lamp")
    if lamp:
        relay = board.pin(lamp["relay"]) if lamp.get("relay") else None
        model = LampModel(board.pwm(lamp["pwm"]), relay, lamp["rated_w"],
                          lamp.get("mains_v", 230.0), lamp.get("amps_per_volt", 0.5))  # fmt: skip
        if lamp.get("current_adc"):
            board.adc(lamp["current_adc"]).source = model.mv
        fitted["lamp"] = model
    for name in sensors:
        spec = bdef["sensors"][name]
        kind = spec["type"]
        dev = None
        if kind == "sps30":
            from spnode.sim.devices import Sps30Device

            dev = board.i2c(spec["i2c"]).attach(spec.get("addr", 0x69), Sps30Device())
        elif kind == "bme280":
            from spnode.sim.devices import Bme280Device

            dev = board.i2c(spec["i2c"]).attach(spec.get("addr", 0x76), Bme280Device())
        elif kind == "pms5003":
            from spnode.sim.devices import Pms5003Device

            dev = board.uart(spec["uart"]).attach(Pms5003Device())
        elif kind == "ld2410":
            from spnode.sim.devices import Ld2410Device

            dev = board.uart(spec["uart"]).attach(Ld2410Device())
        elif kind == "no2_cell":
            board.adc(spec["we"]).set_mv(NO2_MV[0])
            board.adc(spec["ae"]).set_mv(NO2_MV[1])
        elif kind in ("inmp441", "ics43434"):
            from spnode.sim.audio import Looped, Tone

            rate = bdef["i2s"][spec["i2s"]]["rate"]
            tone = Tone(MIC_HZ, MIC_DB, rate, spec.get("sensitivity_dbfs", -26.0))
            dev = board.i2s(spec["i2s"]).attach(Looped(tone, rate // MIC_HZ))
        fitted[name] = dev
    return fitted
