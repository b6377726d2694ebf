"""pyvisa backend plug-in: ``ResourceManager("PATH/TO/BENCH.yaml@memprog")``.

pyvisa imports ``pyvisa_<name>`` for a library string ending in ``@<name>``; this shim
hands it memprog's simulated bench backend.
"""

from memprog.sim_instruments.visa_backend import MemprogVisaLibrary

WRAPPER_CLASS = MemprogVisaLibrary

__all__ = ["WRAPPER_CLASS"]
