"""Tests of memprog.protocols."""
