"""Instrument drivers: one module per instrument, each speaking its real command language."""
