"""The ``simsa.lineage.compare/1`` result: typed (``compare.schema``) and unchanged by the package's reshaping.

The golden results were written by the code before the reshape (``tests/lineage_golden.py``) on checkpoints built from
numpy alone, so they are the same bytes on every machine; today's code must give the same JSON — same keys in the
same order, same verdicts and rules, the same numbers to the precision the result prints.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from lineage_golden import PAIRS, stable, write_models
from simsa.lineage.compare import compare_paths
from simsa.lineage.compare.schema import CompareResult, ComponentResult, IdentitySummary

GOLDEN = Path(__file__).parent / "data" / "lineage_golden"
# Intended differences since the golden files were written: the benchmark scripts' folder was renamed.
RENAMED = (("python bench/", "python benchmarks/"),)


def _same(a: Any, b: Any, where: str = "$") -> list[str]:
    """Differences between two JSON values: structure and text exactly, numbers to the result's own rounding.

    Numbers are also allowed a relative 1e-4: BLAS picks its kernels by CPU (AVX2 or AVX-512), which moves sums of
    many products in their sixth digit — a t statistic of 203.404 reads 203.406 on another machine.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{where}: keys {list(a)} != {list(b)}"]
        return [d for k in a for d in _same(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        if math.isclose(a, b, rel_tol=1e-4, abs_tol=2e-3):
            return []
        return [f"{where}: {a} != {b}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, dict]]:
    paths = write_models(tmp_path_factory.mktemp("golden"))
    out = {}
    for label, (cand, ref) in PAIRS.items():
        raw = compare_paths(paths[cand], paths[ref])
        out[label] = (dict(raw), stable(dict(raw), paths))
    return out


@pytest.mark.parametrize("label", sorted(PAIRS))
def test_the_json_is_what_the_code_before_the_reshape_wrote(results: dict, label: str) -> None:
    text = (GOLDEN / f"{label}.json").read_text(encoding="utf-8")
    for old, new in RENAMED:
        text = text.replace(old, new)
    golden = json.loads(text)
    _, now = results[label]
    assert now["verdict"] == golden["verdict"]
    assert _same(now, golden) == []


def test_the_comparator_sees_a_changed_p_value_and_a_reordered_key() -> None:
    golden = json.loads((GOLDEN / "derived.json").read_text(encoding="utf-8"))
    moved = json.loads(json.dumps(golden))
    moved["components"][0]["log10_p"] -= 0.01
    assert _same(moved, golden) == ["$.components[0].log10_p: " f"{moved['components'][0]['log10_p']} != "
                                    f"{golden['components'][0]['log10_p']}"]
    reordered = {"verdict": golden["verdict"], **{k: v for k, v in golden.items() if k != "verdict"}}
    assert _same(reordered, golden) and _same(reordered, golden)[0].startswith("$: keys")


def _declared(td: type) -> tuple[list[str], set[str]]:
    hints = get_type_hints(td)
    return list(hints), set(td.__required_keys__)  # type: ignore[attr-defined]


@pytest.mark.parametrize("label", sorted(PAIRS))
def test_the_typed_result_declares_exactly_the_keys_a_result_has(results: dict, label: str) -> None:
    raw, _ = results[label]
    keys, required = _declared(CompareResult)
    assert list(raw) == keys and required == set(keys)
    comp_keys, comp_required = _declared(ComponentResult)
    for comp in raw["components"]:
        assert comp_required <= set(comp) <= set(comp_keys), comp["name"]
        assert [k for k in comp_keys if k in comp] == list(comp), "component keys in the declared order"
    id_keys, _ = _declared(IdentitySummary)
    assert list(raw["identity"]) == id_keys
