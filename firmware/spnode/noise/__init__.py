"""Noise levels on the node: A-weighting, LAeq, LAmax/LAmin (fast), LA10/LA90. Audio never leaves
the current buffer; only levels do."""
