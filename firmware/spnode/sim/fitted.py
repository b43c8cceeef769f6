"""Every sensor a node lists, fitted to a simulated board: a simulated device behind each one,
healthy and in range, and the lamp's current sense following the lamp. What the MicroPython
poles of the tests, the firmware bench and the street carry (tests/mp/node_run.py,
simulator/mp/street_node.py); the PIR is a pin the caller drives.

Usage::

    from spnode.sim.fitted import fit

    devices = fit(board, ["pm", "climate", "no2", "noise", "pir", "radar"])
    devices["pm"].fault = "silent"                  # the SPS30 stops answering
"""

import sys

from spnode import unload
from spnode.sim.lamp import LampModel


def fit(board, sensors):
    """Attach a device for each sensor named in ``sensors`` (the board definition's names; the
    device each type gets is spnode.sensortypes') and the lamp model; return {sensor name:
    device}, with "lamp" for the LampModel."""
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
    if not sensors:
        return fitted
    loaded = "spnode.sensortypes" in sys.modules
    from spnode.sensortypes import SIMULATE, TYPES

    try:
        for name in sensors:
            spec = bdef["sensors"][name]
            fitted[name] = TYPES[spec["type"]][SIMULATE](board, spec, bdef)
    finally:
        TYPES = None
        if not loaded:
            unload("spnode.sensortypes")
    return fitted
