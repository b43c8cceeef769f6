"""Streetpole simulator: virtual poles running the real firmware against a real broker.

    STREETPOLE_TOKEN=T python -m simulator --poles 50 --broker mqtt://127.0.0.1:1883 \\
        --api http://127.0.0.1:8000 --speed 60 --scenario simulator/scenarios/night.json

Modules: ``layout`` (streets and poles: a generated grid or GeoJSON), ``world`` (people moving
along the streets, weather, noise and air; deterministic from a seed, no network), ``scenario``
(scenario files and scripted faults), ``provision`` (registry and per-node credentials through
the operator API), ``street`` (the virtual poles: the firmware's ``spnode.app.Node`` on simulated
boards in one asyncio loop, driven by the world), ``report`` (the run summary).
"""
