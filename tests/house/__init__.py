"""Tests of the README, packaging, notebooks and the house rules."""
