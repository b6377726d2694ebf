"""A digital twin of a chip: fit ``DeviceParams`` from a chip's stored measurements.

Floor 3: reads the store and the ground floor's presets, never the simulator's internals.
``calibrate`` drives the fit, ``fits`` holds the estimators, ``response`` the pulse-response
model they share.
"""
