"""GGUF (llama.cpp's format): the strict header parser, the name translation to Hugging Face terms, and the reader
that exposes a GGUF file as a `TensorReader` in Hugging Face names, shapes and values."""

from simsa.lineage.formats.gguf.header import GGUF_SUFFIX, is_gguf
from simsa.lineage.formats.gguf.names import gguf_name_table, permute_rows, unpermute_index
from simsa.lineage.formats.gguf.reader import GGUFCheckpoint

__all__ = ["GGUF_SUFFIX", "GGUFCheckpoint", "gguf_name_table", "is_gguf", "permute_rows", "unpermute_index"]
