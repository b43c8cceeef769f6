# The node's manifest plus the simulated board (firmware/manifest.py leaves it out): what the
# unix-port builds carry, the tests' and the simulator's MicroPython poles (ROMFS image and
# frozen build), so the node runs there on simulated sensors. Never deployed to an ESP32.

include("manifest.py")
package(
    "spnode",
    files=[
        "board/sim.py",
        "board/simota.py",
        "board/simbus.py",
        "sim/__init__.py",
        "sim/audio.py",
        "sim/devices.py",
        "sim/fitted.py",
        "sim/lamp.py",
    ],
)
