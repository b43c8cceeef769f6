"""Node health: the watchdog is fed only while the node is really working.

Two heartbeats: the control loop (it drives the light, so it must tick every few seconds) and an
MQTT round trip (a PUBACK or PINGRESP). A hung control loop stops the feeding at once and the
hardware watchdog restarts the node. A dead MQTT stack is only trusted to a reboot after a long
grace period (default 30 minutes), because the usual cause of silence is an outage of the broker or
the backhaul, which a reboot does not fix and the offline buffer rides out; a hung network stack,
which a reboot does fix, shows up the same way, just longer. Example::

    health = Health(board.watchdog(timeout_ms=30000), clock)
    health.control_tick()    # from the control loop
    health.mqtt_ok()         # on every PUBACK / PINGRESP
    health.feed()            # every second (spnode.app.Node.health_step)
"""

from spnode.compat import ticks_diff


class Health:
    def __init__(self, wdt, clock, control_timeout_ms=5000, mqtt_grace_ms=1800000):
        self.wdt = wdt  # anything with feed(); None on a board without a watchdog
        self.clock = clock
        self.control_timeout_ms = control_timeout_ms
        self.mqtt_grace_ms = mqtt_grace_ms
        now = clock.ticks_ms()
        self._control = now
        self._mqtt = now
        self.feeds = 0
        self.starved = None  # why the watchdog is no longer fed, once it is not

    def control_tick(self):
        self._control = self.clock.ticks_ms()

    def mqtt_ok(self):
        self._mqtt = self.clock.ticks_ms()

    def check(self):
        """None while healthy, else the reason the watchdog must not be fed."""
        now = self.clock.ticks_ms()
        if ticks_diff(now, self._control) > self.control_timeout_ms:
            return "control loop stalled"
        if ticks_diff(now, self._mqtt) > self.mqtt_grace_ms:
            return "no MQTT round trip"
        return None

    def feed(self):
        reason = self.check()
        if reason is None:
            if self.wdt is not None:
                self.wdt.feed()
            self.feeds += 1
        self.starved = reason
        return reason is None
