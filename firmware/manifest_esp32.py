# The production ESP32 image (docs/esp32-build.md): MicroPython's own ESP32 start-up modules
# (_boot.py mounts the filesystem), asyncio, the node (manifest.py), and main.py frozen as well:
# a frozen main.py runs before any file of that name (MicroPython's pyexec_file_if_exists), so
# the code a production node runs is all in its signed image and the filesystem holds data only.
# Without micropython-lib's extras the stock ESP32 manifest brings (umqtt, dht, ...): the node
# has its own MQTT client and drivers, and every KiB left out is slot headroom.

freeze("$(PORT_DIR)/modules")
include("$(MPY_DIR)/extmod/asyncio")
include("manifest.py")
module("main.py")
