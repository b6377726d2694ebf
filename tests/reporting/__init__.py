"""Tests of memprog.reporting."""
