"""The one error type of the protocol core.

`field` names the offending part of a message as a path (``readings[3].v``, ``topic``,
``payload``) so a node developer or an operator reading the dead-letter store knows what to fix.
(Both live in `args`: MicroPython does not let exception instances take new attributes.)
"""


class ProtocolError(ValueError):
    def __init__(self, field, reason):
        super().__init__(field, reason)

    @property
    def field(self):
        return self.args[0]

    @property
    def reason(self):
        return self.args[1]

    def __str__(self):
        return self.args[0] + ": " + self.args[1]
