"""Bench files shipped with memprog (simulated benches and lab templates).

``memprog.open_bench("sim_onchip")`` finds ``sim_onchip.yaml`` here when no such file
exists in the working directory.
"""
