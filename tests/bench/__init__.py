"""Tests of memprog.bench."""
