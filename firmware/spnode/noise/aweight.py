"""A-weighting filter designed on the node for its sample rate.

IEC 61672-1 defines A-weighting by analog poles at 20.6, 107.7, 737.9 and 12194 Hz (the first and
last doubled) with four zeros at 0 Hz. All poles are real, so the filter is a cascade of six
first-order sections: four high-passes s/(s+w) (bilinear transform, K = 2 fs) and two low-passes
w/(s+w). The 12194 Hz poles lie above Nyquist at low sample rates, so the low-pass sections are
prewarped to be exact at PREWARP_HZ (8 kHz): at 24 kHz this keeps the whole 31.5 Hz..8 kHz range
within IEC 61672-1 class 1 limits, where a plain bilinear transform would read -3.7 dB at 8 kHz.

The sections run in fixed point (see kernel.py): coefficients are Q16 integers. `design` returns
the integer coefficients and the gain that makes the quantised filter exactly 0 dB at 1 kHz.

Usage::

    from spnode.noise.aweight import design, response_db

    coeffs, gain = design(24000)           # [kind, a, b] * 6, float gain at 1 kHz
    response_db(coeffs, gain, 1000, 24000)  # 0.0
"""

import math

POLES_HZ = (20.598997, 107.65265, 737.86223, 12194.217)
PREWARP_HZ = 8000.0
Q = 16
HP = 0
LP = 1


def _section(kind, f, k):
    w = 2 * math.pi * f
    a = (k - w) / (k + w)
    b = (k if kind == HP else w) / (k + w)
    return [kind, int(round(a * (1 << Q))), int(round(b * (1 << Q)))]


def design(rate):
    """Integer sections [kind, a, b] (flat list, 3 per section) and the 1 kHz normalising gain."""
    if rate < 2.2 * PREWARP_HZ:
        raise ValueError("sample rate %d too low for A-weighting to 8 kHz" % rate)
    k = 2.0 * rate
    f0 = PREWARP_HZ
    k_lp = 2 * math.pi * f0 / math.tan(math.pi * f0 / rate)
    f1, f2, f3, f4 = POLES_HZ
    coeffs = (
        _section(HP, f1, k)
        + _section(HP, f1, k)
        + _section(HP, f2, k)
        + _section(HP, f3, k)
        + _section(LP, f4, k_lp)
        + _section(LP, f4, k_lp)
    )
    g = _magnitude(coeffs, 1000.0, rate)
    return coeffs, 1.0 / g


def _magnitude(coeffs, f, rate):
    w = 2 * math.pi * f / rate
    c = math.cos(w)
    m2 = 1.0
    for i in range(0, len(coeffs), 3):
        kind, a, b = coeffs[i], coeffs[i + 1] / (1 << Q), coeffs[i + 2] / (1 << Q)
        num = 2 - 2 * c if kind == HP else 2 + 2 * c
        den = 1 - 2 * a * c + a * a
        m2 *= b * b * num / den
    return math.sqrt(m2)


def response_db(coeffs, gain, f, rate):
    """The quantised digital filter's gain in dB at frequency f (analytic)."""
    return 20 * math.log10(_magnitude(coeffs, f, rate) * gain)


def iec_a_db(f):
    """The IEC 61672-1 A-weighting of the analog definition, dB (0 at 1 kHz)."""
    f1, f2, f3, f4 = POLES_HZ
    f2_ = f * f
    ra = (f4 * f4 * f2_ * f2_) / (
        (f2_ + f1 * f1) * math.sqrt((f2_ + f2 * f2) * (f2_ + f3 * f3)) * (f2_ + f4 * f4)
    )
    return 20 * math.log10(ra) + 2.0
