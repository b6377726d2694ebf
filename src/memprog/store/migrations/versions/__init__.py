"""One file per schema change, oldest first (0001 is the first schema)."""
