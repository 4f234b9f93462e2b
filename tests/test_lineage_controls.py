"""The self-test's structured controls: independent models that share the tested model's residual layout.

Arrays are checked directly (the layout survives, the values do not), controls are written from llama-shaped numpy
checkpoints carrying the adversarial layouts of ``lineage_nulls``, and the self-test runs end to end on a model whose
last 32 of 128 residual coordinates are zero: a comparison that mistakes the shared padding for a shared origin calls
the layout-matched control related to the model, and the self-test must then fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from lineage_nulls import Shape, layout, write_llama
from simsa.lineage.model.roles import MappedTensor, Role
from simsa.lineage.selftest.controls import (
    GENERATED,
    constant_columns,
    layout_matched_matrix,
    layout_matched_vector,
    unit_views,
    write_controls,
)
from simsa.lineage.selftest.disguise import Model, ResidualPermutation
from simsa.lineage.selftest.run import selftest

Q = "model.layers.0.self_attn.q_proj.weight"  # residual coordinates on axis 1
DOWN = "model.layers.1.mlp.down_proj.weight"  # residual coordinates on axis 0
GAIN = "model.layers.0.input_layernorm.weight"


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def test_layout_matched_matrix_keeps_the_layout_and_draws_fresh_values() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((400, 24)).astype(np.float32)
    a[:, 3] = 0.0  # padding
    a[:, 7] *= 40.0  # a large-scale coordinate
    a[[10, 200], 11] = 500.0  # two spikes on an ordinary coordinate
    a[:, 15] = a[:, 14]  # a duplicated coordinate
    a[:, 20] *= 0.01
    got = layout_matched_matrix(a, np.random.default_rng(2))
    assert got.shape == a.shape and got.dtype == np.float32
    assert not got[:, 3].any()
    assert np.array_equal(got[:, 15], got[:, 14]) and got[:, 14].any()
    sd = got.std(axis=0)
    ordinary = [c for c in range(24) if c not in (3, 7, 11, 20)]
    assert 30 < sd[7] / np.median(sd[ordinary]) < 55
    assert sd[20] / np.median(sd[ordinary]) < 0.02
    big = np.abs(got) > 100
    big[:, 7] = False  # the large-scale coordinate reaches that far everywhere
    assert big.sum() == 2 and set(np.nonzero(big)[1]) == {11}  # the spikes stay on their coordinate
    assert np.allclose(np.sort(np.abs(got[big])), [500.0, 500.0])
    live = [c for c in range(24) if c != 3]
    assert abs(_corr(got[:, live], a[:, live])) < 0.05  # nothing of the values themselves
    again = layout_matched_matrix(a, np.random.default_rng(2))
    assert np.array_equal(got, again)
    with pytest.raises(ValueError, match="units × coordinates"):
        layout_matched_matrix(np.zeros(5, np.float32), rng)


def test_layout_matched_vector_keeps_gains_that_are_layout() -> None:
    rng = np.random.default_rng(3)
    padded = np.ones(64, np.float32)
    padded[48:] = 0.0
    assert np.array_equal(layout_matched_vector(padded, rng), padded)  # ones and zeros: all layout
    trained = (1 + 0.05 * rng.standard_normal(256)).astype(np.float32)
    trained[[5, 90]] = [0.0, 0.002]
    trained[200] = 9.0
    got = layout_matched_vector(trained, np.random.default_rng(4))
    assert got[5] == 0.0 and got[90] == np.float32(0.002) and got[200] == np.float32(9.0)
    rest = np.setdiff1d(np.arange(256), [5, 90, 200])
    assert not np.array_equal(got[rest], trained[rest])  # the copied gain vector would be identity evidence
    assert abs(float(np.median(got[rest])) - 1.0) < 0.02 and 0.03 < float(got[rest].std()) < 0.08
    assert abs(_corr(got[rest], trained[rest])) < 0.2


def test_constant_columns() -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal((50, 10)).astype(np.float32)
    a[:, 2] = 0.0
    a[:, 6] = 0.25
    a[:, 8] += 1e-6 * a[:, 8]
    assert np.flatnonzero(constant_columns(a)).tolist() == [2, 6]
    half = np.zeros((50, 10), np.float32)
    half[:, :4] = rng.standard_normal((50, 4))
    assert np.flatnonzero(constant_columns(half)).tolist() == list(range(4, 10))  # most coordinates dead
    assert not constant_columns(a[:1]).any()


def test_unit_views_follow_fused_expert_and_transposed_layouts() -> None:
    """Each entry's units × coordinates view writes back into its own slice of the stored tensor."""
    experts, units, width = 3, 4, 6
    fused = np.zeros((experts, 2 * units, width), np.float32)  # [expert, gate rows + up rows, residual]
    entries = [MappedTensor("e", Role("text", kind, 0, expert=e), (experts, 2 * units, width), 1, rng, e)
               for e in range(experts) for kind, rng in (("moe.expert.gate", (0, units)),
                                                          ("moe.expert.up", (units, 2 * units)))]
    views = unit_views(fused, entries)
    assert len(views) == 2 * experts and all(v.shape == (units, width) for v in views)
    for i, v in enumerate(views):
        v[...] = i + 1
    assert np.array_equal(fused[1, units:, :], np.full((units, width), 4.0))  # expert 1, up rows
    down = np.zeros((width, 5), np.float32)  # [residual, units]: the view is transposed
    (view,) = unit_views(down, [MappedTensor("d", Role("text", "mlp.down", 0), (width, 5), 0)] * 2)
    assert view.shape == (5, width)
    view[2, 3] = 7.0
    assert down[3, 2] == 7.0
    assert unit_views(np.ones(width, np.float32), [MappedTensor("n", Role("text", "norm", 0), (width,))]) == []


def test_written_controls_share_the_padding_and_nothing_else(tmp_path: Path) -> None:
    shape = Shape()
    path = write_llama(tmp_path / "model", shape, 0, layout("zero_pad", shape, 32))
    model = Model.open(path)
    made = {c.name: c for c in write_controls(model, tmp_path / "controls", 0)}
    assert list(made) == list(GENERATED) and all(c.path is not None for c in made.values())
    assert made["gaussian"].path == tmp_path / "controls" / "control"
    src = load_file(str(path / "model.safetensors"))
    for name in ("layout_matched", "zero_padded"):
        got = load_file(str(made[name].path / "model.safetensors"))
        assert set(got) == set(src)
        for key in (Q, DOWN, "model.embed_tokens.weight", "lm_head.weight"):
            res = got[key] if key != DOWN else got[key].T
            assert not res[:, 96:].any(), (name, key)  # the padded coordinates stay zero
            assert np.abs(res[:, :96]).min(axis=0).max() > 0 and (res[:, :96] != 0).all(axis=0).any()
            assert abs(_corr(res[:, :96], (src[key] if key != DOWN else src[key].T)[:, :96])) < 0.05
    gains = load_file(str(made["layout_matched"].path / "model.safetensors"))[GAIN]
    assert np.array_equal(gains, src[GAIN])  # ones with zeroed padding: kept as they are
    gaussian = load_file(str(made["gaussian"].path / "model.safetensors"))
    assert gaussian[Q][:, 96:].any() and np.array_equal(gaussian[GAIN], np.ones(128, np.float32))


def test_massive_coordinates_stay_massive_on_fresh_units(tmp_path: Path) -> None:
    shape = Shape()
    lay = layout("massive", shape, 3, seed=2)
    path = write_llama(tmp_path / "model", shape, 1, lay)
    made = {c.name: c for c in write_controls(Model.open(path), tmp_path / "controls", 1, ["layout_matched"])}
    src = load_file(str(path / "model.safetensors"))[Q]
    got = load_file(str(made["layout_matched"].path / "model.safetensors"))[Q]
    threshold = 10 * float(np.abs(src).mean())
    src_at, got_at = np.nonzero(np.abs(src) > threshold), np.nonzero(np.abs(got) > threshold)
    assert set(got_at[1]) == set(src_at[1]) == set(lay.coords)  # the same coordinates carry the spikes
    assert len(got_at[0]) == len(src_at[0])
    assert set(zip(*got_at, strict=True)) != set(zip(*src_at, strict=True))  # in other units


def test_zero_padded_control_is_skipped_without_constant_coordinates(tmp_path: Path) -> None:
    path = write_llama(tmp_path / "model", Shape(), 0)
    made = write_controls(Model.open(path), tmp_path / "controls", 0, ["zero_padded", "layout_matched"])
    assert [c.name for c in made] == ["zero_padded", "layout_matched"]
    skipped = made[0]
    assert skipped.path is None and "no (near-)constant residual coordinate" in skipped.reason
    assert not (tmp_path / "controls" / "control-zero_padded").exists()
    assert skipped.to_dict()["path"] is None
    with pytest.raises(ValueError, match="unknown control"):
        write_controls(Model.open(path), tmp_path / "controls", 0, ["uniform"])


def test_selftest_runs_structured_controls_on_a_zero_padded_model(tmp_path: Path) -> None:
    """The padded coordinates are shared by construction: no control may look related to the model because of them.

    Before the comparison checked the exchangeability of residual coordinates, the layout-matched control of this
    model came out with log10 p near −16.
    """
    shape = Shape()
    path = write_llama(tmp_path / "model", shape, 0, layout("zero_pad", shape, 32))
    result = selftest(path, disguises=["residual_permutation"], seed=0)
    assert result["control"] == "fresh Gaussian weights of the model's shapes"
    rows = {r["name"]: r for r in result["controls"]}
    assert list(rows) == ["gaussian", "layout_matched", "zero_padded"]
    for row in rows.values():
        assert set(row) >= {"name", "description", "verdict", "log10_p", "passed"}
        assert row["verdict"] not in ("derived", "identical"), row
        assert row["passed"] is True
    assert result["control_baseline"]["verdict"] == rows["gaussian"]["verdict"]
    assert result["control_baseline"]["log10_p"] == rows["gaussian"]["log10_p"]
    layout_row = rows["layout_matched"]
    assert layout_row["log10_p"] > -6, layout_row  # the shared padding is no evidence
    assert result["controls_derived"] == []
    assert result["control_independent"] == all(r["verdict"] == "independent" for r in rows.values())
    disguise = result["disguises"][0]
    assert disguise["applicable"] and disguise["disguised"]["verdict"] == "derived"
    assert disguise["control"]["verdict"] == result["control_baseline"]["verdict"]
    assert result["passed"] is True


def test_selftest_fails_when_a_supplied_control_is_derived(tmp_path: Path) -> None:
    """The supplied control is listed first, is the one disguised, and a derived one fails the self-test."""
    path = write_llama(tmp_path / "model", Shape(), 0)
    copy = tmp_path / "copy"
    ResidualPermutation().write(Model.open(path), copy, np.random.default_rng(9))
    result = selftest(path, control=copy, disguises=["head_permutation"], generated=["gaussian", "zero_padded"])
    assert result["control"] == str(copy)
    names = [r["name"] for r in result["controls"]]
    assert names == ["supplied", "gaussian", "zero_padded"]
    supplied, gaussian, padded = result["controls"]
    assert supplied["verdict"] == "derived" and supplied["passed"] is False and str(copy) in supplied["description"]
    assert gaussian["verdict"] == "independent" and gaussian["passed"] is True
    assert padded["verdict"] is None and padded["passed"] is None and "constant" in padded["reason"]
    assert result["control_baseline"]["verdict"] == "derived"
    assert result["controls_derived"] == ["supplied"]
    assert result["control_independent"] is False
    assert result["passed"] is False
    with pytest.raises(ValueError, match="unknown control"):
        selftest(path, generated=["bogus"], disguises=["head_permutation"])
