"""Weight-lineage forensics: does a candidate model descend from a reference?

Sub-packages by concept: ``formats`` (reading weights: safetensors, GGUF, remote, fingerprints — one `TensorReader`
protocol), ``model`` (roles, adapters, units, tokenizer, config priors), ``stats`` (the test, p-values, verdicts),
``compare`` (one pair end to end), ``fingerprints`` (build, registry, scan) and ``selftest``. Dependencies run one
way: ``model`` and ``stats`` need nothing else here, ``formats`` builds on them, ``compare`` on those, and
``fingerprints`` and ``selftest`` on ``compare``.
"""
