"""Tests of memprog.twin."""
