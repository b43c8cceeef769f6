"""Sensor and actuator drivers: one chip per module, the bus passed in, no I/O in constructors.

Every driver keeps `fault` (None or a short reason) and returns None instead of a value while in
fault: a reading that was not measured is never invented.
"""
