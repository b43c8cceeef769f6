"""Simulated devices that speak the real wire formats, for the simulated board and the tests.

Each device has a `fault` attribute for fault injection: None (healthy), "crc" (corrupted
CRC or checksum), "truncate" (frames cut short), "silent" (no bytes / no I2C acknowledge),
"stuck" (the same value forever, or the chip's 'no data' pattern).
"""
