"""The lamp's supply current as the current-sense ADC sees it: a module of its own, so a
simulated pole fitted with a lamp and a PIR only loads no other device's code.

Usage::

    lamp = LampModel(board.pwm("lamp"), board.pin("relay"))
    board.adc("lamp_current").source = lamp.mv
    lamp.broken = True                      # the lamp fails: no current at any level
"""


class LampModel:
    """The lamp's supply current as the current-sense ADC sees it; `broken` fails the lamp."""

    def __init__(self, pwm, relay=None, rated_w=60.0, mains_v=230.0, amps_per_volt=0.5):
        self.pwm = pwm
        self.relay = relay
        self.rated_w = rated_w
        self.mains_v = mains_v
        self.amps_per_volt = amps_per_volt
        self.broken = False
        self.relay_stuck = False

    def mv(self):
        on = self.relay_stuck or self.relay is None or self.relay.value()
        if self.broken or not on:
            return 0.0
        level = self.pwm.duty_u16() / 65535
        if self.relay_stuck and level == 0:
            level = 0.1  # driver at its minimum
        amps = level * self.rated_w / self.mains_v + 0.01
        return amps / self.amps_per_volt * 1000
