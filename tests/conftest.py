"""Shared test settings: hypothesis runs derandomized, so CI is deterministic."""
from hypothesis import HealthCheck, settings

settings.register_profile(
    "npvae", derandomize=True, deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("npvae")
