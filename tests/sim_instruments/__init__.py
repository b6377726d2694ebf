"""Tests of memprog.sim_instruments."""
