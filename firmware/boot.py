# Runs first on the ESP32. The application lives in /app (swapped by updates, see
# spnode/update.py); data (boot counter, config, measurement journal, update state) in /data.
import gc
import sys

# MicroPython's own import path on the node: its code is files in /app on the flash, not an
# installed package (the CPython side has no sys.path edit: tests/test_layers.py).
sys.path.insert(0, "/app")
gc.collect()
