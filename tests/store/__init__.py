"""Tests of memprog.store."""
