"""What the tensors of a model are: roles per tensor (``roles``), the adapters that map a family's names onto roles
(``adapters``), the hidden units a role map yields (``units``), the tokenizer's vocabulary (``tokenizer``) and the
priors a config alone supports (``priors``: same family, same shapes — context, never evidence of descent).
"""

from simsa.lineage.model.adapters import describe, map_architecture
from simsa.lineage.model.priors import compare_configs, known_architecture
from simsa.lineage.model.roles import STACKS, ArchitectureMap, MappedTensor, Role, StackInfo
from simsa.lineage.model.tokenizer import (
    Vocabulary,
    compare_vocabularies,
    load_vocabulary,
    read_vocabulary,
    token_alignment,
)
from simsa.lineage.model.units import ComponentUnits, UnitGroup, read_units, unit_groups

__all__ = [
    "STACKS",
    "ArchitectureMap",
    "ComponentUnits",
    "MappedTensor",
    "Role",
    "StackInfo",
    "UnitGroup",
    "Vocabulary",
    "compare_configs",
    "compare_vocabularies",
    "describe",
    "known_architecture",
    "load_vocabulary",
    "map_architecture",
    "read_units",
    "read_vocabulary",
    "token_alignment",
    "unit_groups",
]
