"""Electrochemical NO2 cell (e.g. Alphasense NO2-B43F on an ISB board) read through two ADC inputs.

The working electrode (WE) responds to NO2; the auxiliary electrode (AE) sees the same
temperature and zero drift without the gas. Alphasense algorithm 1:

    ppb = ((WE - WE_zero) - n * (AE - AE_zero)) / sensitivity      (mV, mV, mV/ppb)
    ug/m3 = ppb * M(NO2) * P / (R * T)        (1.9125 at 20 degC and 1013.25 hPa, as EU 2008/50/EC)

Calibration constants come from the controller's config (calibration.no2_*); without them the
datasheet-typical defaults are used and the result is flagged uncalibrated.

Usage::

    from spnode.drivers.no2_cell import No2Cell

    cell = No2Cell(board.adc("no2_we"), board.adc("no2_ae"))
    cell.calibrate(we_zero_mv=228.0, ae_zero_mv=231.0, sensitivity_mv_ppb=0.212)
    r = cell.read()     # {"we_mv":..., "ae_mv":..., "ppb":..., "ugm3":..., "calibrated": True}
"""

M_NO2 = 46.0055  # g/mol
R = 8.314462  # J/(mol K)
DEFAULTS = (225.0, 225.0, 0.25)  # WE zero mV, AE zero mV, mV/ppb: typical, not this cell's
RAIL_LOW_MV = 5  # an ADC this close to a rail means a cut wire or a short, not a reading
RAIL_HIGH_MV = 3050


def ppb_to_ugm3(ppb, temp_c=20.0, p_hpa=1013.25):
    return ppb * M_NO2 * p_hpa * 0.1 / (R * (temp_c + 273.15))


class No2Cell:
    def __init__(self, adc_we, adc_ae, n=1.0, gain=1.0, samples=16):
        self.adc_we = adc_we
        self.adc_ae = adc_ae
        self.n = n  # AE weight (Alphasense "n", temperature-dependent; a constant here)
        self.gain = gain  # mV at the cell per mV at the ADC (a divider on the board)
        self.samples = samples
        self.fault = None
        self.we_zero, self.ae_zero, self.sens = DEFAULTS
        self.calibrated = False

    def calibrate(self, we_zero_mv=None, ae_zero_mv=None, sensitivity_mv_ppb=None):
        if we_zero_mv is not None:
            self.we_zero = we_zero_mv
        if ae_zero_mv is not None:
            self.ae_zero = ae_zero_mv
        if sensitivity_mv_ppb is not None:
            self.sens = sensitivity_mv_ppb
        self.calibrated = None not in (we_zero_mv, ae_zero_mv, sensitivity_mv_ppb)

    def _mv(self, adc, name):
        total = 0
        lo = hi = None
        for _ in range(self.samples):
            uv = adc.read_uv()
            total += uv
            lo = uv if lo is None or uv < lo else lo
            hi = uv if hi is None or uv > hi else hi
        mv = total / self.samples / 1000
        if lo / 1000 <= RAIL_LOW_MV or hi / 1000 >= RAIL_HIGH_MV:
            self.fault = "%s ADC at a rail (%.0f mV): wiring or cell fault" % (name, mv)
            return None
        return mv * self.gain

    def read(self, temp_c=None, p_hpa=None):
        """Raw electrode voltages and NO2, or None with `fault` set."""
        we = self._mv(self.adc_we, "WE")
        ae = self._mv(self.adc_ae, "AE")
        if we is None or ae is None:
            return None
        ppb = ((we - self.we_zero) - self.n * (ae - self.ae_zero)) / self.sens
        ugm3 = ppb_to_ugm3(
            ppb, 20.0 if temp_c is None else temp_c, 1013.25 if p_hpa is None else p_hpa
        )
        self.fault = None
        return {
            "we_mv": we,
            "ae_mv": ae,
            "ppb": ppb,
            "ugm3": ugm3,
            "calibrated": self.calibrated,
        }
