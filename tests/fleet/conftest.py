"""The fleet tests' Ray: two CPUs on 127.0.0.1, one per test module, torn down after."""

from __future__ import annotations

import pytest

from memprog.fleet.engines import loopback_environment, loopback_ray

loopback_environment()  # before Ray is imported anywhere in these tests: it reads it then


@pytest.fixture(scope="module")
def cluster():
    """A two-CPU Ray for the module, bound to loopback as memprog binds its own."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[test]' installs it)")
    loopback_ray(ray)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 2**20)
    try:
        yield ray
    finally:
        ray.shutdown()
