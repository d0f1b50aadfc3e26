"""Fixtures the integration modules of one tier share."""

import time

import pytest
from agdeploy import deploy, with_bootstrap


@pytest.fixture(scope="session")
def vm_deployed(vm_bed, measured):
    """Tier 2's one deploy, from three fresh guests (the kept ones are the other tier 2
    sessions' two; AG_TIER2_GUESTS=as-they-are runs it on those that run) to the stand-in
    autograder (its result in .first), with a bootstrap in the pillar; test_deploy_vm.py
    checks it."""
    original = vm_bed.read_pillar()
    vm_bed.pillar = with_bootstrap(original)
    vm_bed.write_pillar(vm_bed.pillar)
    started = time.monotonic()
    vm_bed.first = deploy(vm_bed, timeout=7200 if vm_bed.fresh else 3600)
    measured(f"ag.deploy on 3 {'fresh' if vm_bed.fresh else 'reused'} guests: "
             f"{time.monotonic() - started:.0f} s")
    yield vm_bed
    vm_bed.write_pillar(original)
