"""Tests of memprog.drivers."""
