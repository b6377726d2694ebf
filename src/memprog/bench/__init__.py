"""Bench assembly (floor 2): turn a bench file into open instruments and a cell programmer.

Sits on the simulator, the drivers and the protocols; the store, training, jobs and the CLI
sit on it. ``assembly`` opens a bench, ``precheck`` checks one before a run, ``direct``
drives a simulated chip without a transport, and ``robustness`` runs a protocol over many
such chips.
"""
