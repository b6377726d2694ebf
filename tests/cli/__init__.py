"""Tests of memprog.cli."""
