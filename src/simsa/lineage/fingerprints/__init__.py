"""Fingerprints and what is done with many of them: building one from a model (``build``), a registry of them that
an agency publishes (``registry``), and the scan of a candidate against every reference in a registry (``scan``).
The file format itself is ``simsa.lineage.formats.fingerprint``.
"""

from simsa.lineage.fingerprints.build import build_fingerprint
from simsa.lineage.fingerprints.registry import Registry, default_registry, registry_bytes
from simsa.lineage.fingerprints.scan import scan

__all__ = ["Registry", "build_fingerprint", "default_registry", "registry_bytes", "scan"]
