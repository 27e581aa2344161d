"""Shared settings for the attnlib test suite."""

import os

import pytest
from hypothesis import HealthCheck, settings

import attnlib

# Deterministic, bounded property tests: the same examples on every run, and no flaky deadlines on a busy CI box.
settings.register_profile(
    "course",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, so what it draws does not depend on which tests ran before."""
    attnlib.set_seed(0)
