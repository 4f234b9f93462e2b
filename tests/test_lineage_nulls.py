"""Adversarial nulls: independent models that share a residual layout must never be called derived.

Before the coordinate audit, two independently initialised llama-shaped models whose last 64 of 128 residual
coordinates are zero in both came out ``derived`` (log10 p ≈ −17): the null permuted zero coordinates onto live
ones, which made the observed alignment of the zeros look exceptional.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lineage_nulls import Shape, layout, null_pair, write_llama
from simsa.lineage.compare import validity
from simsa.lineage.compare.result import compare, compare_paths
from simsa.lineage.compare.sides import fingerprint_side, open_side
from simsa.lineage.fingerprints.build import build_fingerprint
from simsa.lineage.formats.fingerprint import Fingerprint
from simsa.lineage.stats.exchangeability import audit, clean_coordinates, flag_matrix

CASES = [
    ("zero_pad", 64, Shape()),
    ("zero_pad", 32, Shape()),
    ("zero_pad", 96, Shape(hidden=256, intermediate=384)),
    ("scale_outliers", 8, Shape()),
    ("massive", 8, Shape()),
    ("duplicated", 16, Shape()),
]


@pytest.mark.parametrize(("kind", "count", "shape"), CASES, ids=[f"{k}-{c}-{s.hidden}" for k, c, s in CASES])
def test_a_shared_layout_is_never_evidence_of_descent(tmp_path: Path, kind: str, count: int, shape: Shape) -> None:
    for seed in (0, 1):
        a, b, _ = null_pair(tmp_path, kind, count, seed, shape)
        result = compare_paths(a, b)
        assert result["verdict"] in ("independent", "inconclusive"), (kind, seed, result["rule"])
        assert result["log10_p"] > -6, (kind, seed, result["log10_p"])
        assert not any(c["verdict"] == "derived" for c in result["components"])
        check = result["validity"]["assumptions"][0]
        assert check["check"] == "exchangeable residual coordinates"
        if kind != "scale_outliers":  # standardising columns already neutralises a pure scale outlier...
            assert check["outcome"] == "corrected"
            # ...the other layouts are found and left out, and the test runs on what remains
            assert check["kept"] <= shape.hidden - count, check


def test_zero_padding_is_found_coordinate_by_coordinate(tmp_path: Path) -> None:
    a, b, _ = null_pair(tmp_path, "zero_pad", 64, 3)
    result = compare_paths(a, b)
    check = result["validity"]["assumptions"][0]
    assert check["excluded"]["constant"] == 64 and check["kept"] == 64
    assert check["candidate"]["coordinates"]["constant"][:3] == [64, 65, 66]
    assert result["verdict"] == "independent"
    # The card quotes the packaged calibration of the candidate's family, figures and all.
    packaged = json.loads((Path(validity.__file__).parent / "calibration.json").read_text(encoding="utf-8"))
    cal = result["validity"]["calibration"]
    assert result["validity"]["family"] == cal["family"] == "dense decoder"
    fam = packaged["families"]["dense decoder"]
    assert (cal["hard_negatives"], cal["derived"], cal["upper_95"]) == (fam["hard_negatives"], fam["derived"],
                                                                        fam["upper_95"])


def _fine_tuned(src: Path, out: Path, noise: float, seed: int) -> Path:
    """A copy of ``src`` with every live weight nudged (a crude fine-tune); zero coordinates stay zero."""
    rng = np.random.default_rng(seed)
    tensors = load_file(str(src / "model.safetensors"))
    for name, x in tensors.items():
        if x.ndim == 2:
            tensors[name] = (x + (x != 0) * rng.standard_normal(x.shape).astype(np.float32) * noise * x.std()
                             ).astype(np.float32)
    out.mkdir(parents=True)
    save_file(tensors, str(out / "model.safetensors"))
    (out / "config.json").write_text((src / "config.json").read_text(encoding="utf-8"), encoding="utf-8")
    return out


def test_a_real_derivation_inside_a_padded_layout_is_still_found(tmp_path: Path) -> None:
    shape = Shape()
    lay = layout("zero_pad", shape, 64)
    parent = write_llama(tmp_path / "parent", shape, 11, lay)
    child = _fine_tuned(parent, tmp_path / "child", 0.5, 1)
    result = compare_paths(child, parent)
    assert result["verdict"] == "derived", result["rule"]
    assert result["validity"]["assumptions"][0]["kept"] == 64


def test_a_fingerprint_keeps_the_references_audit(tmp_path: Path) -> None:
    a, b, _ = null_pair(tmp_path, "zero_pad", 64, 4)
    fp = build_fingerprint(open_side(b))
    path = tmp_path / "b.simsa-fp"
    fp.save(path)
    loaded = Fingerprint.load(path)
    ref_audit = loaded.excluded("text")
    assert ref_audit is not None and ref_audit.flagged["constant"] == frozenset(range(64, 128))
    cand = open_side(a)
    result = compare(cand, fingerprint_side(loaded, str(path)))
    assert result["verdict"] != "derived" and result["log10_p"] > -6, result["rule"]
    check = result["validity"]["assumptions"][0]
    assert check["reference"]["counts"]["constant"] == 64 and check["outcome"] == "corrected"
    # A derived copy still comes out derived against the same fingerprint.
    child = _fine_tuned(b, tmp_path / "child", 0.5, 2)
    got = compare(open_side(child), fingerprint_side(Fingerprint.load(path), str(path)))
    assert got["verdict"] == "derived", got["rule"]


def test_a_fingerprint_whose_audit_is_out_of_range_is_refused(tmp_path: Path) -> None:
    a, _, _ = null_pair(tmp_path, "zero_pad", 16, 5)
    fp = build_fingerprint(open_side(a))
    fp.arrays["excluded|text"] = np.array([[999, 0]], dtype=np.int64)
    path = tmp_path / "bad.simsa-fp"
    fp.save(path)
    with pytest.raises(Exception, match="coordinate audit of stack 'text' is malformed"):
        Fingerprint.load(path)


def test_flag_matrix_names_each_kind_of_degenerate_coordinate() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 64))
    x[:, 3] = 0.0  # constant
    x[:, 7] = 2.5  # constant, non-zero
    x[:, 10] = -x[:, 9]  # duplicated up to sign
    x[:5, 20] = 40.0  # spiked: a few units carry a huge value
    x[:, 30] *= 50.0  # outlying scale
    flags = flag_matrix(x)
    assert flags["constant"] == {3, 7}
    assert flags["duplicated"] == {9, 10}
    assert flags["spiked"] == {20}
    assert flags["scale"] == {30}
    assert flag_matrix(rng.standard_normal((256, 64))) == {r: set() for r in flags}  # Gaussian: nothing flagged
    laplace = rng.laplace(size=(256, 512))  # heavier tails than Gaussian, as trained weights have
    assert sum(len(v) for v in flag_matrix(laplace).values()) <= 3


def test_audit_unions_matrices_and_clean_coordinates_is_the_complement() -> None:
    rng = np.random.default_rng(1)
    m1, m2 = rng.standard_normal((64, 32)), rng.standard_normal((64, 32))
    m1[:, 0] = 0
    m2[:, 5] = 0
    found = audit([m1, m2], 32)
    assert found.excluded == {0, 5} and found.matrices == 2
    assert json.loads(json.dumps(found.to_dict()))["counts"]["constant"] == 2
    assert clean_coordinates(8, {1, 2}, [2, 7]).tolist() == [0, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="unit matrix has 32 coordinates"):
        audit([m1], 16)
