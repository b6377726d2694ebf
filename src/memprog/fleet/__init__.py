"""Fleets: one job over many chips and benches, in this process or on Ray (issue 26).

Floor 3, above the jobs it runs on each chip (:mod:`memprog.jobs.program`) and below the
dashboard. :mod:`~memprog.fleet.chips` says which chips (N simulated ones, or a fleet file of
real benches), :mod:`~memprog.fleet.tiling` cuts a network too large for one array into
tiles over several, :mod:`~memprog.fleet.worker` holds one chip's bench open
(``BenchActor`` on Ray), :mod:`~memprog.fleet.engines` runs the workers (``local`` or
``ray``), :mod:`~memprog.fleet.job` is the job and its report.
"""
