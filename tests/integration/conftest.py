"""Fixtures the integration modules of one tier share."""

import time

import pytest
from agdeploy import deploy, with_bootstrap


@pytest.fixture(scope="session")
def vm_deployed(vm_bed, measured):
    """Tier 2's one deploy, from fresh guests (or the last passing session's) to the stand-in
    autograder (its result in .first), with a bootstrap in the pillar; test_deploy_vm.py
    checks it, the other tier 2 modules run on the guests it made."""
    original = vm_bed.read_pillar()
    vm_bed.pillar = with_bootstrap(original)
    vm_bed.write_pillar(vm_bed.pillar)
    started = time.monotonic()
    vm_bed.first = deploy(vm_bed, timeout=7200 if vm_bed.fresh else 3600)
    measured(f"ag.deploy on 3 {'fresh' if vm_bed.fresh else 'reused'} guests: "
             f"{time.monotonic() - started:.0f} s")
    yield vm_bed
    vm_bed.write_pillar(original)
