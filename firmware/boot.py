# Runs first on the ESP32. The application lives in /app (swapped by updates, see
# spnode/update.py); data (boot counter, config, measurement journal, update state) in /data.
import gc
import sys

sys.path.insert(0, "/app")
gc.collect()
