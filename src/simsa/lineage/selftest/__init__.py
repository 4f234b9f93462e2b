"""``simsa lineage selftest``: the engine checked on disguised copies of a model (``disguise``) and on generated
and independent controls (``controls``); the writers those disguises need (GGUF, Q4_K) live here too, as nothing
else writes those formats.
"""

from simsa.lineage.selftest.run import selftest

__all__ = ["selftest"]
