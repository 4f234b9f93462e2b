"""Where weights come from: the file formats simsa reads and the sources it reads them from.

Every reader here implements one protocol, `TensorReader` (``reader``): safetensors checkpoints (``checkpoint`` over
``safetensors``, one file, a sharded index or a directory), GGUF files (``gguf``), remote repositories read by HTTP
range requests (``remote``, opened through ``hub``) and stored fingerprints (``fingerprint``). ``digest`` holds the
cheap tensor digests the identity check compares; ``dtypes`` decodes stored dtypes.
"""

from simsa.lineage.formats.checkpoint import Checkpoint
from simsa.lineage.formats.digest import quick_key
from simsa.lineage.formats.dtypes import round_to_bf16
from simsa.lineage.formats.fingerprint import (
    SUFFIX as FINGERPRINT_SUFFIX,
)
from simsa.lineage.formats.fingerprint import (
    Fingerprint,
    FingerprintCheckpoint,
    FingerprintSettings,
    fingerprint_units,
    group_id,
)
from simsa.lineage.formats.gguf import GGUFCheckpoint, is_gguf
from simsa.lineage.formats.hub import ModelRef, open_model, parse_model_ref
from simsa.lineage.formats.reader import IOStats, TensorReader
from simsa.lineage.formats.remote import RemoteSource
from simsa.lineage.formats.safetensors import SafetensorsFile
from simsa.lineage.formats.safetensors_write import write_safetensors

__all__ = [
    "FINGERPRINT_SUFFIX",
    "Checkpoint",
    "Fingerprint",
    "FingerprintCheckpoint",
    "FingerprintSettings",
    "GGUFCheckpoint",
    "IOStats",
    "ModelRef",
    "RemoteSource",
    "SafetensorsFile",
    "TensorReader",
    "fingerprint_units",
    "group_id",
    "is_gguf",
    "open_model",
    "parse_model_ref",
    "quick_key",
    "round_to_bf16",
    "write_safetensors",
]
