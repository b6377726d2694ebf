"""Tests of memprog.dashboard."""
