"""Seeded sampling shared by fingerprints and comparisons: each sample is reproducible on its own key.

A fingerprint and a later comparison must draw the same reference units and coordinates, so both derive their
generators from the settings' seed and a stable key here.
"""


from __future__ import annotations

import zlib

import numpy as np

from simsa.lineage.stats.correspondence import (
    SamplingSettings,
)


def sample_rng(settings: SamplingSettings, *key: object) -> np.random.Generator:
    """A generator seeded by the settings' seed and a stable key, so each sample is reproducible on its own."""
    return np.random.default_rng([settings.seed, zlib.crc32(repr(key).encode())])


def sample_units(n: int, limit: int, settings: SamplingSettings, *key: object) -> np.ndarray:
    """All ``n`` unit indices, or a seeded sorted sample of ``limit`` of them."""
    if n <= limit:
        return np.arange(n)
    return np.sort(sample_rng(settings, *key).choice(n, limit, replace=False))
