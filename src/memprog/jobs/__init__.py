"""Jobs: whole workflows built on the protocols (weight programming, in-situ training)."""
