"""Tests of memprog.hwaware."""
