"""``simsa lineage compare``: one candidate against one reference, end to end.

``sides`` opens a model or a fingerprint, ``identity`` finds copied tensors, ``evidence`` runs the hidden-unit test per
component, ``reuse`` measures how much a reused part changed, ``baselines`` the naive statistics, ``validity`` the
card of assumptions and calibration, ``result`` assembles the documented ``simsa.lineage.compare/1`` result and
``summary`` says it in a few lines.
"""

from simsa.lineage.compare.result import SCHEMA, compare, compare_paths
from simsa.lineage.compare.sides import Side, fingerprint_side, open_side
from simsa.lineage.compare.summary import summarise
from simsa.lineage.compare.validity import validity_card

__all__ = ["SCHEMA", "Side", "compare", "compare_paths", "fingerprint_side", "open_side", "summarise", "validity_card"]
