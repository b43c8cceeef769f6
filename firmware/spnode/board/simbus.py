"""The simulated board's buses (I2C, UART, I2S) and RTC (see spnode.board.sim): loaded when a
SimBoard first opens one, so a board without them does not hold their code."""

ENODEV = 19  # what machine.I2C raises when nothing acknowledges


class SimI2C:
    """I2C master. Devices implement write(data) and read(n) -> bytes (what the chip clocks out;
    fewer bytes than asked leave the bus high, 0xFF). A device whose `nack` is true does not
    acknowledge, like a missing or dead chip."""

    def __init__(self):
        self.devices = {}

    def attach(self, addr, device):
        self.devices[addr] = device
        return device

    def _dev(self, addr):
        dev = self.devices.get(addr)
        if dev is None or getattr(dev, "nack", False):
            raise OSError(ENODEV)
        return dev

    def scan(self):
        return sorted(a for a, d in self.devices.items() if not getattr(d, "nack", False))

    def writeto(self, addr, buf, stop=True):
        self._dev(addr).write(bytes(buf))
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        data = self._dev(addr).read(len(buf))
        n = len(data)
        for i in range(len(buf)):
            buf[i] = data[i] if i < n else 0xFF

    def readfrom(self, addr, n, stop=True):
        buf = bytearray(n)
        self.readfrom_into(addr, buf)
        return bytes(buf)

    def readfrom_mem_into(self, addr, reg, buf):
        self.writeto(addr, bytes((reg,)))
        self.readfrom_into(addr, buf)

    def readfrom_mem(self, addr, reg, n):
        buf = bytearray(n)
        self.readfrom_mem_into(addr, reg, buf)
        return bytes(buf)

    def writeto_mem(self, addr, reg, buf):
        self.writeto(addr, bytes((reg,)) + bytes(buf))


class SimUART:
    """UART whose far end is a device with `write(data)` and `output(max_bytes)` -> bytes.

    The device is asked for output once per poll: after a read finds the receive buffer empty,
    the next read asks again. So a driver's read-until-empty loop sees one burst per call."""

    def __init__(self, baud=9600):
        self.baud = baud
        self.device = None
        self._rx = bytearray()
        self._fresh = True

    def attach(self, device):
        self.device = device
        return device

    def _pull(self):
        if self._fresh and self.device is not None and len(self._rx) < 1024:
            self._rx.extend(self.device.output(1024 - len(self._rx)))
        self._fresh = False
        if not self._rx:
            self._fresh = True

    def any(self):
        self._pull()
        return len(self._rx)

    def read(self, n=-1):
        self._pull()
        if not self._rx:
            return None  # as machine.UART with timeout=0
        if n < 0 or n > len(self._rx):
            n = len(self._rx)
        data = bytes(self._rx[:n])
        self._rx = self._rx[n:]
        return data

    def readinto(self, buf, nbytes=-1):
        data = self.read(len(buf) if nbytes < 0 else nbytes)
        if data is None:
            return None
        for i in range(len(data)):
            buf[i] = data[i]
        return len(data)

    def write(self, buf):
        if self.device is not None:
            self.device.write(bytes(buf))
        return len(buf)


class SimI2S:
    """I2S receiver: 32-bit mono frames from an attached source with `fill(buf, n)` (ints into an
    array('i')). Without a source the microphone is silent (all zeros), as a dead one."""

    def __init__(self, rate):
        self.rate = rate
        self.source = None

    def attach(self, source):
        self.source = source
        return source

    def readinto(self, buf):
        n = len(buf)
        if self.source is None:
            for i in range(n):
                buf[i] = 0
        else:
            self.source.fill(buf, n)
        return n * 4


class SimRTC:
    def __init__(self):
        self._dt = (2026, 1, 1, 3, 0, 0, 0, 0)

    def datetime(self, dt=None):
        if dt is None:
            return self._dt
        self._dt = tuple(dt)
