"""Streetpole simulator: virtual poles running the real firmware against a real broker."""
