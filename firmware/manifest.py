# What a Streetpole node carries: the node's modules and the protocol modules it needs. No
# simulator code (spnode/sim/, board/sim.py, board/simbus.py: firmware/manifest_sim.py adds them
# for the unix-port builds) and no host tools (protocols/codec.py, checkgen.py, ...).
#
# A MicroPython manifest (docs.micropython.org, "MicroPython manifest files"): the frozen builds
# include it after their port's own manifest (tests/harness/mpbuild.py, docs/firmware.md for the
# ESP32), and the host tools evaluate the same file to list what `streetpole node deploy` sends
# and what the ROMFS image holds (fieldtools/build.py, manifest_files). Files are
# listed one by one so nothing reaches a node by being dropped into a folder;
# tests/test_firmware_manifest.py fails when a firmware module is in neither manifest.
# main.py and boot.py are not here: they stay source files on the node's filesystem. A manifest
# that includes this one does so before anything else (metadata() must come first, and once).

metadata(description="Streetpole node firmware", license="EUPL-1.2")
package(
    "spnode",
    files=[
        "__init__.py",
        "app.py",
        "astro.py",
        "board/__init__.py",
        "board/esp32.py",
        "boarddef.py",
        "buffer.py",
        "clock.py",
        "compat.py",
        "dimconf.py",
        "dimming.py",
        "drivers/__init__.py",
        "drivers/bme280.py",
        "drivers/lamp.py",
        "drivers/ld2410.py",
        "drivers/no2_cell.py",
        "drivers/pir.py",
        "drivers/pms5003.py",
        "drivers/sps30.py",
        "flash.py",
        "health.py",
        "httpget.py",
        "imgupdate.py",
        "mqtt_client.py",
        "nodecmd.py",
        "nodeconfig.py",
        "nodeinit.py",
        "nodemsg.py",
        "noise/__init__.py",
        "noise/_viper.py",
        "noise/aweight.py",
        "noise/kernel.py",
        "noise/meter.py",
        "remoteconfig.py",
        "selftest.py",
        "sensing/__init__.py",
        "sensing/air.py",
        "sensing/pm.py",
        "sensortypes.py",
        "tlsctx.py",
        "tzparse.py",
        "tzrules.py",
        "update.py",
        "updsig.py",
    ],
)
# The wire protocol as the node speaks it: checks compiled from the schemas (nodecheck), the
# rules beyond them, topics and quantities. The controller's codec and the schema tools stay home.
package(
    "protocols",
    files=[
        "__init__.py",
        "errors.py",
        "incoming.py",
        "mqtt_framing.py",
        "outgoing.py",
        "quantities.py",
        "rules.py",
        "topics.py",
        "nodecheck/__init__.py",
        "nodecheck/ack.py",
        "nodecheck/cmd.py",
        "nodecheck/config.py",
        "nodecheck/event.py",
        "nodecheck/meas.py",
        "nodecheck/presence.py",
        "nodecheck/state.py",
        "nodecheck/stored.py",
    ],
    base_path="..",
)
