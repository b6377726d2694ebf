"""Ground floor: what every other room may import, and which imports nothing above it.

Errors, validated models, units and safety limits, the wiring of crossbars and probe
stations, bench files (parsing, not assembly), the technology presets and ``DeviceParams``
(they describe a chip, so limits, training, the twin and the simulator all read them), strict
YAML and JSON, signal handling. Nothing here touches an instrument or a database.
"""
