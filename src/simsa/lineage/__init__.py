"""Lineage: was a model initialised from another model's weights, and where? (torch-free)."""
