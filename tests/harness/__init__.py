"""Shared test and benchmark harness: real broker, real MicroPython, real mpy-cross."""
