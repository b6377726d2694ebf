"""Tests of memprog.jobs."""
