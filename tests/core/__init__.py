"""Tests of memprog.core."""
