"""Shared settings for the attnlib test suite."""

import os

from hypothesis import HealthCheck, settings

# Deterministic, bounded property tests: the same examples on every run, and no flaky deadlines on a busy CI box.
settings.register_profile(
    "course",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))
