"""Outcomes and figures of a run: one rule for what counts as done, one way to draw it.

Floor 3, beside the store: jobs, the dashboard and the CLI report through it.
"""
