"""Fingerprints, registries and scans (`simsa lineage fingerprint|scan|registry`) on the tiny zoo models.

What is checked, with real zoo models throughout (nothing of the core is mocked):

* a fingerprint is deterministic, survives ``save``/``load`` bit for bit, and a comparison against it gives the same
  verdicts (and log10 p within a few units) as against the checkpoint, also for a rotated copy;
* hostile ``.simsa-fp`` files are refused with one clear ``CheckpointError``;
* a registry adds, lists, verifies and removes entries, exports and re-imports losslessly, and refuses hostile
  archives without writing anything into itself;
* ``scan`` ranks the true parent first as ``derived`` and calls no unrelated reference derived; Holm and
  Benjamini–Hochberg match hand-computed values and their defining properties;
* the command line through a real subprocess.

Zoo fact used when choosing registries: ``moe-sK`` and ``bert-sK`` with the same K share initial random numbers (the
same torch seed drew same-shaped tensors), and the test rightly finds them related; so a registry never holds a moe
and a bert reference of the seed the candidate descends from. Within a family different seeds are independent
(``llama-s1`` vs ``llama-s0`` is borderline, so ``llama-s2`` serves as the independent llama).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import math
import shutil
import struct
import subprocess
import sys
import tarfile
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from simsa.errors import CheckpointError
from simsa.lineage.compare.result import compare
from simsa.lineage.compare.sides import open_side
from simsa.lineage.fingerprints.build import build_fingerprint
from simsa.lineage.fingerprints.registry import INDEX, Registry, default_registry, registry_bytes, safe_name
from simsa.lineage.fingerprints.registry import SCHEMA as REGISTRY_SCHEMA
from simsa.lineage.fingerprints.scan import SCHEMA as SCAN_SCHEMA
from simsa.lineage.fingerprints.scan import _bound, benjamini_hochberg, holm, scan
from simsa.lineage.formats.fingerprint import (
    META_KEY,
    RUN_KEYS,
    SCHEMA,
    SUFFIX,
    Fingerprint,
    FingerprintSettings,
    fingerprint_units,
    group_id,
)
from simsa.lineage.selftest.disguise import Model, ResidualRotation

# References fingerprinted once per module. Registry A holds no bert-s0 (moe-s0's seed twin); registry B holds no
# moe-s0 (bert-s0's seed twin); otherwise the same families and seeds.
REFERENCES = ("llama-s0", "llama-s2", "moe-s0", "moe-s2", "bert-s0", "bert-s1", "bert-s3")
REGISTRY_A = ("llama-s0", "llama-s2", "moe-s0", "moe-s2", "bert-s1", "bert-s3")
REGISTRY_B = ("llama-s0", "llama-s2", "moe-s2", "bert-s0", "bert-s1", "bert-s3")
DESCENT = ("derived", "identical")


def simsa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simsa.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def _one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    return lines[0]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative name → bytes), to show an operation wrote nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def zoo(lineage_zoo):  # type: ignore[no-untyped-def]
    return lineage_zoo


@pytest.fixture(scope="module")
def fingerprints(zoo) -> dict[str, Fingerprint]:  # type: ignore[no-untyped-def]
    """Fingerprints of the reference models, built once (default settings). Treat as read-only."""
    out = {}
    for name in REFERENCES:
        side = open_side(zoo.models[name])
        try:
            out[name] = build_fingerprint(side, name=name)
        finally:
            side.ckpt.close()
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lineage-registry")


@pytest.fixture(scope="module")
def fp_files(fingerprints: dict[str, Fingerprint], store: Path) -> dict[str, Path]:
    """Each reference fingerprint saved as NAME.simsa-fp (read-only: copy before damaging one)."""
    out = {}
    (store / "files").mkdir()
    for name, fp in fingerprints.items():
        out[name] = store / "files" / f"{name}{SUFFIX}"
        fp.save(out[name])
    return out


def _registry(root: Path, names: tuple[str, ...], fp_files: dict[str, Path]) -> Registry:
    reg = Registry.open(root, create=True)
    for name in names:
        reg.add(Fingerprint.load(fp_files[name]), name)
    return reg


@pytest.fixture(scope="module")
def registry_a(fp_files: dict[str, Path], store: Path) -> Registry:
    return _registry(store / "registry-a", REGISTRY_A, fp_files)


@pytest.fixture(scope="module")
def registry_b(registry_a: Registry, fp_files: dict[str, Path], store: Path) -> Registry:
    """Registry A copied, moe-s0 removed and bert-s0 added (also exercises remove/add on a copied registry)."""
    shutil.copytree(registry_a.root, store / "registry-b")
    reg = Registry.open(store / "registry-b")
    reg.remove("moe-s0")
    reg.add(Fingerprint.load(fp_files["bert-s0"]), "bert-s0")
    assert sorted(Registry.open(reg.root).entries) == sorted(REGISTRY_B)
    return reg


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_keeps_what_a_comparison_needs(zoo, fingerprints) -> None:  # type: ignore[no-untyped-def]
    fp = fingerprints["llama-s0"]
    side = open_side(zoo.models["llama-s0"])
    try:
        assert fp.meta["schema"] == SCHEMA and fp.name == "llama-s0"
        assert fp.settings == FingerprintSettings()
        assert fp.meta["model_type"] == "llama" == side.amap.model_type
        assert fp.meta["parameters"] == side.ckpt.total_parameters()
        assert fp.meta["shapes"] == {n: list(side.ckpt.shape(n)) for n in side.ckpt.names()}
        assert set(fp.meta["identity_keys"]) == set(side.ckpt.names())
        width = side.amap.stacks["text"].hidden_size
        coords = fp.coords("text")
        assert coords.dtype == np.int64 and len(np.unique(coords)) == len(coords) == min(width, fp.settings.coords)
        assert coords.min() >= 0 and coords.max() < width
        groups = [(c, layer, g) for c, cu in side.comps.items() for layer, gs in cu.layers.items() for g in gs.values()]
        assert groups
        for comp, layer, g in groups:
            units = fp.group(group_id(comp, layer, g))
            assert units is not None and units.dtype == np.float16, (comp, layer, g.key)
            assert np.isfinite(units).all()
            expect = min(g.n_units, fp.settings.paired if g.paired else fp.settings.ref_units)
            assert units.shape[0] == expect, (comp, layer, g.key)
        ids, rows = fp.anchors("text")  # type: ignore[misc]
        assert len(ids) == len(rows) and rows.shape[1] == len(coords)
        vocab = fp.vocabulary()
        assert vocab is not None and vocab.tokens == side.vocab.tokens  # type: ignore[union-attr]
    finally:
        side.ckpt.close()


def test_fingerprint_is_deterministic_and_round_trips(zoo, fingerprints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fp = fingerprints["moe-s0"]
    side = open_side(zoo.models["moe-s0"])
    try:
        again = build_fingerprint(side, name="moe-s0")
    finally:
        side.ckpt.close()
    assert sorted(again.arrays) == sorted(fp.arrays)
    assert all(np.array_equal(again.arrays[k], fp.arrays[k]) for k in fp.arrays)

    path = tmp_path / f"moe{SUFFIX}"
    size = fp.save(path)
    assert size == path.stat().st_size > 0
    loaded = Fingerprint.load(path)
    assert sorted(loaded.arrays) == sorted(fp.arrays)
    for k, a in fp.arrays.items():
        assert loaded.arrays[k].dtype == a.dtype and loaded.arrays[k].shape == a.shape, k
        assert np.array_equal(loaded.arrays[k], a), k
    digest = loaded.meta.pop("arrays_sha256")
    assert isinstance(digest, str) and len(digest) == 64
    kept = {k: v for k, v in fp.meta.items() if k not in RUN_KEYS}  # the build's duration is not written
    assert loaded.meta == json.loads(json.dumps(kept)) and "seconds" in fp.meta and "seconds" not in loaded.meta
    again.save(tmp_path / f"built-again{SUFFIX}")
    fp.save(tmp_path / f"built-once{SUFFIX}")  # two builds of one model: the same bytes
    assert (tmp_path / f"built-again{SUFFIX}").read_bytes() == (tmp_path / f"built-once{SUFFIX}").read_bytes()
    assert loaded.settings == fp.settings and loaded.name == "moe-s0" and loaded.nbytes == fp.nbytes
    assert loaded.vocabulary().tokens == fp.vocabulary().tokens  # type: ignore[union-attr]
    # Saving what was loaded writes the same bytes: nothing drifts through a round trip.
    loaded.meta["arrays_sha256"] = digest
    assert loaded.save(tmp_path / f"again{SUFFIX}") == size
    assert (tmp_path / f"again{SUFFIX}").read_bytes() == path.read_bytes()


# (candidate, reference, expected verdict)
FINGERPRINT_PAIRS = [
    ("llama-s0-ft", "llama-s0", "derived"),
    ("llama-s0-drop2", "llama-s0", "derived"),
    ("moe-s0-perm", "moe-s0", "derived"),
    ("llama-emb-from-s0", "llama-s0", "derived"),
    ("bert-s0-reinit1", "bert-s0", "derived"),
    ("llama-s2", "llama-s0", "independent"),
    ("bert-s3", "bert-s0", "independent"),
]


@pytest.mark.parametrize(("candidate", "reference", "expected"), FINGERPRINT_PAIRS,
                         ids=[f"{c}~{r}" for c, r, _ in FINGERPRINT_PAIRS])
def test_fingerprint_gives_the_checkpoints_verdicts(zoo, fp_files, candidate: str, reference: str,  # type: ignore[no-untyped-def]
                                                     expected: str) -> None:
    cand = open_side(zoo.models[candidate])
    ref = open_side(zoo.models[reference])
    try:
        full = compare(cand, ref)
        fast = compare(cand, open_side(fp_files[reference]))
    finally:
        cand.ckpt.close()
        ref.ckpt.close()
    assert full["verdict"] == expected and fast["verdict"] == expected, (full["verdict"], fast["verdict"])
    assert abs(full["log10_p"] - fast["log10_p"]) <= 3.0, (full["log10_p"], fast["log10_p"])
    if expected == "derived":
        assert fast["log10_p"] <= -10
    assert fast["reference"]["parameters"] == full["reference"]["parameters"]
    by_name = {c["name"]: c for c in full["components"]}
    for c in fast["components"]:
        twin = by_name[c["name"]]
        assert c["verdict"] == twin["verdict"], (c["name"], c["verdict"], twin["verdict"])
        assert [lm[:2] for lm in c["layer_map"]] == [lm[:2] for lm in twin["layer_map"]], c["name"]


def test_rotated_copy_is_still_derived_from_the_fingerprint(zoo, fp_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "llama-s0-rotated"
    ResidualRotation().write(Model.open(zoo.models["llama-s0"]), out, np.random.default_rng(0))
    cand = open_side(out)
    try:
        result = compare(cand, open_side(fp_files["llama-s0"]))
    finally:
        cand.ckpt.close()
    assert result["verdict"] == "derived" and result["log10_p"] <= -10
    assert result["alignment"]["text"]["kind"] == "orthogonal"


def _split(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _join(path: Path, header: dict, data: bytes) -> None:
    h = json.dumps(header).encode()
    h += b" " * (-(8 + len(h)) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def _with_meta(src: Path, dst: Path, raw_meta: str) -> None:
    header, data = _split(src)
    header["__metadata__"] = {META_KEY: raw_meta}
    _join(dst, header, data)


def _renamed_model(zoo, src: Path, dst: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copyfile(zoo.models["llama-s0"] / "model.safetensors", dst)


def _broken_json(zoo, src: Path, dst: Path) -> None:  # type: ignore[no-untyped-def]
    _with_meta(src, dst, '{"schema": "simsa.lineage.fingerprint/1", "settings": {')


def _wrong_schema(zoo, src: Path, dst: Path) -> None:  # type: ignore[no-untyped-def]
    meta = json.loads(_split(src)[0]["__metadata__"][META_KEY])
    meta["schema"] = "simsa.lineage.fingerprint/99"
    _with_meta(src, dst, json.dumps(meta))


def _flipped_bytes(zoo, src: Path, dst: Path) -> None:  # type: ignore[no-untyped-def]
    header, data = _split(src)
    name = next(k for k in sorted(header) if k.startswith("units|"))
    start = header[name]["data_offsets"][0]
    buf = bytearray(data)
    for i in range(start, start + 64, 2):  # low byte of float16 values: stay finite, change the value
        buf[i] ^= 0x01
    _join(dst, header, bytes(buf))


def _truncated(zoo, src: Path, dst: Path) -> None:  # type: ignore[no-untyped-def]
    raw = src.read_bytes()
    dst.write_bytes(raw[: len(raw) // 2])


HOSTILE_FP: dict[str, tuple[Callable, str]] = {
    "renamed-model": (_renamed_model, "not a simsa fingerprint"),
    "broken-metadata-json": (_broken_json, "not valid JSON"),
    "wrong-schema": (_wrong_schema, "schema"),
    "arrays-altered": (_flipped_bytes, "digest"),
    "truncated": (_truncated, "truncated|beyond|shorter"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_FP))
def test_hostile_fingerprint_files_give_one_clear_error(zoo, fp_files, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    make, pattern = HOSTILE_FP[kind]
    bad = tmp_path / f"bad{SUFFIX}"
    make(zoo, fp_files["llama-s0"], bad)
    with pytest.raises(CheckpointError, match=pattern) as exc:
        Fingerprint.load(bad)
    message = str(exc.value)
    assert "\n" not in message and str(bad) in message
    with pytest.raises(CheckpointError, match=pattern):
        open_side(bad)


def _drop_coords(fp: Fingerprint) -> None:
    del fp.arrays["coords|text"]


def _coords_out_of_range(fp: Fingerprint) -> None:
    fp.arrays["coords|text"] = fp.arrays["coords|text"] + 10**6


def _shape_not_a_list(fp: Fingerprint) -> None:
    fp.meta["shapes"][next(iter(fp.meta["shapes"]))] = "abc"


def _vocabulary_not_a_table(fp: Fingerprint) -> None:
    fp.meta["vocabulary"] = {"tokens": 5}


def _token_id(value: object) -> Callable[[Fingerprint], None]:
    def damage(fp: Fingerprint) -> None:
        tokens = fp.meta["vocabulary"]["tokens"]
        tokens[next(iter(tokens))] = value
    return damage


def _config_not_a_mapping(fp: Fingerprint) -> None:
    fp.meta["config"] = [1]


MALFORMED_FP: dict[str, Callable[[Fingerprint], None]] = {
    "missing-coords-array": _drop_coords,
    "coords-out-of-range": _coords_out_of_range,
    "shape-not-a-list": _shape_not_a_list,
    "vocabulary-not-a-table": _vocabulary_not_a_table,
    "token-id-negative": _token_id(-1),
    "token-id-boolean": _token_id(True),
    "token-id-fraction": _token_id(1.5),
    "token-id-string": _token_id("7"),
    "token-id-beyond-any-vocabulary": _token_id(2**40),
    "token-id-beyond-64-bits": _token_id(2**70),  # orjson refuses it; the standard parser reads it, the check refuses
    "config-not-a-mapping": _config_not_a_mapping,
}


@pytest.mark.parametrize("kind", sorted(MALFORMED_FP))
def test_malformed_fingerprint_contents_give_one_clear_error(zoo, fp_files, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    fp = Fingerprint.load(fp_files["llama-s0"])
    MALFORMED_FP[kind](fp)
    bad = tmp_path / f"bad{SUFFIX}"
    fp.save(bad)
    cand = open_side(zoo.models["llama-s0-ft"])
    try:
        with pytest.raises(CheckpointError, match="malformed fingerprint"):
            compare(cand, open_side(bad))
    finally:
        cand.ckpt.close()


def test_fingerprint_metadata_orjson_refuses_still_loads(zoo, fp_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # json writes NaN (a config can hold one); orjson refuses it, so loading falls back to the standard parser.
    fp = Fingerprint.load(fp_files["llama-s0"])
    fp.meta["config"]["initializer_range"] = float("nan")
    fp.save(tmp_path / f"nan{SUFFIX}")
    again = Fingerprint.load(tmp_path / f"nan{SUFFIX}")
    assert math.isnan(again.meta["config"]["initializer_range"])
    assert again.meta["vocabulary"] == fp.meta["vocabulary"] and again.meta["shapes"] == fp.meta["shapes"]


def test_fingerprints_of_one_architecture_share_their_role_map(fp_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A scan maps each reference's roles; references of one shape map once, a changed config maps anew.
    one, two = Fingerprint.load(fp_files["llama-s0"]), Fingerprint.load(fp_files["llama-s2"], verify=False)
    assert one.meta["shapes"] == two.meta["shapes"] and one.meta["config"] == two.meta["config"]
    assert fingerprint_units(one) is fingerprint_units(two)
    other = Fingerprint.load(fp_files["llama-s0"])
    other.meta["config"]["hidden_act"] = "gelu"
    other.save(tmp_path / f"gelu{SUFFIX}")
    units = fingerprint_units(Fingerprint.load(tmp_path / f"gelu{SUFFIX}"))
    assert units is not fingerprint_units(one) and units[0].stacks == fingerprint_units(one)[0].stacks
    two.close()


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize(("name", "key"), [
    ("llama-s0", "llama-s0"),
    ("org/name", "org--name"),
    ("  Qwen/Qwen2.5-7B@main  ", "Qwen--Qwen2.5-7B@main"),
    ("a+b_c.d", "a+b_c.d"),
    ("x" * 200, "x" * 200),
])
def test_safe_name_accepts(name: str, key: str) -> None:
    assert safe_name(name) == key


@pytest.mark.parametrize("name", [
    "", "   ", ".", "..", "../x", "../../etc/passwd", "/abs", ".hidden", "-flag", "a b", "a\\b", "a:b", "x\x00y",
    "line\nbreak", "ünïcode", "\u202eevil", "x" * 201, "org/" + "x" * 300,
])
def test_safe_name_refuses(name: str) -> None:
    with pytest.raises(CheckpointError, match="invalid registry name"):
        safe_name(name)


def test_default_registry_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIMSA_LINEAGE_REGISTRY", str(tmp_path / "mine"))
    assert default_registry() == tmp_path / "mine"
    monkeypatch.delenv("SIMSA_LINEAGE_REGISTRY")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_registry() == tmp_path / "cache" / "simsa" / "lineage-registry"


def test_registry_create_add_list_load_remove(fp_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "reg"
    with pytest.raises(CheckpointError, match="no fingerprint registry"):
        Registry.open(root)
    reg = Registry.open(root, create=True)
    assert root.is_dir() and reg.entries == {}

    entry = reg.add(Fingerprint.load(fp_files["llama-s0"]))  # default name: the fingerprint's own
    path = root / f"llama-s0{SUFFIX}"
    assert entry["name"] == "llama-s0" and entry["file"] == path.name
    assert entry["sha256"] == _sha256(path.read_bytes()) and entry["bytes"] == path.stat().st_size
    assert entry["model_type"] == "llama" and entry["parameters"] > 0 and entry["stacks"]["text"]
    entry2 = reg.add(Fingerprint.load(fp_files["moe-s2"]), "org/moe")
    assert entry2["name"] == "org--moe" and (root / f"org--moe{SUFFIX}").is_file()

    again = Registry.open(root)
    assert sorted(again.entries) == ["llama-s0", "org--moe"]
    assert again.entries == json.loads(json.dumps(reg.entries))
    index = json.loads((root / INDEX).read_text())
    assert index["schema"] == REGISTRY_SCHEMA and [e["name"] for e in index["entries"]] == ["llama-s0", "org--moe"]
    assert registry_bytes(again) == path.stat().st_size + (root / f"org--moe{SUFFIX}").stat().st_size
    loaded = again.load("org--moe", verify=True)
    original = Fingerprint.load(fp_files["moe-s2"])
    assert loaded.name == "org--moe" and loaded.meta["model_type"] == original.meta["model_type"]
    assert all(np.array_equal(loaded.arrays[k], original.arrays[k]) for k in original.arrays)

    with pytest.raises(CheckpointError, match="already holds"):
        again.add(Fingerprint.load(fp_files["bert-s1"]), "llama-s0", replace=False)
    assert again.load("llama-s0", verify=True).meta["model_type"] == "llama"  # untouched by the refused add
    again.add(Fingerprint.load(fp_files["bert-s1"]), "llama-s0")  # replace=True (default) overwrites
    assert Registry.open(root).load("llama-s0", verify=True).meta["model_type"] == "bert"

    again.remove("org/moe")  # the same spelling as when added
    assert not (root / f"org--moe{SUFFIX}").exists()
    assert sorted(Registry.open(root).entries) == ["llama-s0"]
    with pytest.raises(CheckpointError, match="holds no"):
        again.remove("org/moe")
    with pytest.raises(CheckpointError, match="invalid registry name"):
        again.remove("../llama-s0")
    assert sorted(p.name for p in root.iterdir()) == sorted([INDEX, f"llama-s0{SUFFIX}"])


def test_registry_load_verify_detects_a_changed_file(fp_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reg = _registry(tmp_path / "reg", ("llama-s0",), fp_files)
    shutil.copyfile(fp_files["moe-s2"], tmp_path / "reg" / f"llama-s0{SUFFIX}")  # a valid fingerprint, swapped in
    assert reg.load("llama-s0").meta["model_type"] != "llama"  # without verify the swap goes unnoticed ...
    with pytest.raises(CheckpointError, match="does not match the digest"):
        reg.load("llama-s0", verify=True)  # ... with verify it is refused


@pytest.mark.parametrize(("index", "pattern"), [
    ("{not json", "unreadable registry index"),
    (json.dumps({"schema": "other/1", "entries": []}), "not a simsa.lineage.registry/1 index"),
    (json.dumps({"schema": REGISTRY_SCHEMA, "entries": {}}), "not a simsa.lineage.registry/1 index"),
    (json.dumps({"schema": REGISTRY_SCHEMA, "entries": ["x"]}), "malformed entry"),
    (json.dumps({"schema": REGISTRY_SCHEMA, "entries": [{"name": "x", "file": f"../x{SUFFIX}"}]}), "stored as"),
    (json.dumps({"schema": REGISTRY_SCHEMA, "entries": [{"name": "x", "file": f"/etc/x{SUFFIX}"}]}), "stored as"),
    (json.dumps({"schema": REGISTRY_SCHEMA, "entries": [{"name": "x", "file": "x.json"}]}), "stored as"),
])
def test_registry_index_is_checked(tmp_path: Path, index: str, pattern: str) -> None:
    (tmp_path / INDEX).write_text(index)
    with pytest.raises(CheckpointError, match=pattern):
        Registry.open(tmp_path)


def test_export_then_import_into_a_fresh_registry(registry_a, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / "published.tar"
    assert registry_a.export(archive) == len(REGISTRY_A)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    assert sorted(m.name for m in members) == sorted([INDEX, *(f"{n}{SUFFIX}" for n in REGISTRY_A)])
    assert all(m.isfile() for m in members)

    fresh = Registry.open(tmp_path / "fresh", create=True)
    assert fresh.import_archive(archive) == sorted(REGISTRY_A)
    reopened = Registry.open(tmp_path / "fresh")
    assert reopened.entries == json.loads(json.dumps(registry_a.entries))
    for name in REGISTRY_A:
        got, want = reopened.load(name, verify=True), registry_a.load(name)
        assert got.meta == want.meta
        assert sorted(got.arrays) == sorted(want.arrays)
        assert all(np.array_equal(got.arrays[k], want.arrays[k]) for k in want.arrays)
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == sorted(
        [INDEX, *(f"{n}{SUFFIX}" for n in REGISTRY_A)])  # no leftover temporary directory

    assert reopened.import_archive(archive) == []  # already there: kept, not replaced
    assert reopened.import_archive(archive, replace=True) == sorted(REGISTRY_A)
    assert Registry.open(tmp_path / "fresh").entries == reopened.entries


# --- hostile archives


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def _index(*entries: tuple[str, str, str]) -> bytes:
    """An index of (name, file, sha256) entries."""
    return json.dumps({"schema": REGISTRY_SCHEMA, "entries": [
        {"name": n, "file": f, "sha256": s, "bytes": 1} for n, f, s in entries]}).encode()


@pytest.fixture
def target(fp_files, tmp_path: Path) -> Registry:  # type: ignore[no-untyped-def]
    """A registry that already holds one reference, to import hostile archives into."""
    return _registry(tmp_path / "reg", ("llama-s2",), fp_files)


def _archive(path: Path, build: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w") as tar:
        build(tar)
    return path


def _hostile_archives(fp: bytes, model: bytes) -> dict[str, tuple[Callable[[tarfile.TarFile], None] | bytes, str]]:
    good = _sha256(fp)
    ok_index = _index(("x", f"x{SUFFIX}", good))

    def members(*extra: tuple) -> Callable[[tarfile.TarFile], None]:
        def build(tar: tarfile.TarFile) -> None:
            for m in extra:
                _add(tar, *m)
        return build

    return {
        "parent-path-member": (members((INDEX, ok_index), (f"x{SUFFIX}", fp), (f"../evil{SUFFIX}", fp)),
                               "only plain files at the top level"),
        "subdirectory-member": (members((INDEX, _index(("x", f"x{SUFFIX}", good))), (f"sub/x{SUFFIX}", fp)),
                                "only plain files at the top level"),
        "absolute-member": (members((INDEX, ok_index), (f"x{SUFFIX}", fp), (f"/tmp/evil{SUFFIX}", fp)),
                            "only plain files at the top level"),
        "hidden-member": (members((INDEX, ok_index), (f"x{SUFFIX}", fp), (f".x{SUFFIX}", fp)),
                          "only plain files at the top level"),
        "symlink-member": (members((INDEX, ok_index), (f"x{SUFFIX}", b"", tarfile.SYMTYPE, "/etc/passwd")),
                           "only plain files"),
        "hardlink-member": (members((INDEX, ok_index), (f"x{SUFFIX}", b"", tarfile.LNKTYPE, INDEX)),
                            "only plain files"),
        "directory-member": (members((INDEX, ok_index), (f"x{SUFFIX}", b"", tarfile.DIRTYPE)), "only plain files"),
        "fifo-member": (members((INDEX, ok_index), (f"x{SUFFIX}", b"", tarfile.FIFOTYPE)), "only plain files"),
        "digest-mismatch": (members((INDEX, _index(("x", f"x{SUFFIX}", "0" * 64))), (f"x{SUFFIX}", fp)),
                            "does not match its digest"),
        "listed-member-missing": (members((INDEX, _index(("x", f"x{SUFFIX}", good), ("y", f"y{SUFFIX}", good))),
                                          (f"x{SUFFIX}", fp)), "lacks"),
        "missing-index": (members((f"x{SUFFIX}", fp)), f"no {INDEX}"),
        "index-points-outside": (members((INDEX, _index(("x", f"../x{SUFFIX}", good))), (f"x{SUFFIX}", fp)),
                                 "must be stored as"),
        "index-points-into-subdirectory": (members((INDEX, _index(("x", f"sub/x{SUFFIX}", good))), (f"x{SUFFIX}", fp)),
                                           "must be stored as"),
        "index-not-json": (members((INDEX, b"{oops"), (f"x{SUFFIX}", fp)), "unreadable registry index"),
        "index-wrong-schema": (members((INDEX, json.dumps({"schema": "x", "entries": []}).encode()),
                                       (f"x{SUFFIX}", fp)), "not a simsa.lineage.registry/1 index"),
        "member-not-a-fingerprint": (members((INDEX, _index(("x", f"x{SUFFIX}", _sha256(model)))),
                                             (f"x{SUFFIX}", model)), "not a simsa fingerprint"),
        "not-a-tar-file": (b"this is not a tar archive\n" * 40, "not a readable registry archive"),
        "empty-file": (b"", "not a readable registry archive"),
    }


HOSTILE_ARCHIVES = ["parent-path-member", "subdirectory-member", "absolute-member", "hidden-member", "symlink-member",
                    "hardlink-member", "directory-member", "fifo-member", "digest-mismatch", "listed-member-missing",
                    "missing-index", "index-points-outside", "index-points-into-subdirectory", "index-not-json",
                    "index-wrong-schema", "member-not-a-fingerprint", "not-a-tar-file", "empty-file"]


@pytest.mark.parametrize("kind", HOSTILE_ARCHIVES)
def test_hostile_archive_is_refused_and_writes_nothing(zoo, fp_files, target, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    model = (zoo.models["llama-s0"] / "model.safetensors").read_bytes()
    cases = _hostile_archives(fp_files["moe-s2"].read_bytes(), model)
    assert sorted(cases) == sorted(HOSTILE_ARCHIVES)
    build, pattern = cases[kind]
    archive = tmp_path / "hostile.tar"
    if isinstance(build, bytes):
        archive.write_bytes(build)
    else:
        _archive(archive, build)
    before, around = _snapshot(target.root), sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(CheckpointError, match=pattern) as exc:
        target.import_archive(archive)
    assert str(archive) in str(exc.value) or ".import-" in str(exc.value)
    assert _snapshot(target.root) == before  # nothing written, no temporary directory left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == around  # nothing written beside the registry either
    assert not Path(f"/tmp/evil{SUFFIX}").exists()
    assert sorted(Registry.open(target.root).entries) == ["llama-s2"]


def test_archive_with_an_unlisted_member_is_refused(fp_files, target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fp = fp_files["moe-s2"].read_bytes()
    archive = _archive(tmp_path / "extra.tar", lambda tar: (
        _add(tar, INDEX, _index(("x", f"x{SUFFIX}", _sha256(fp)))), _add(tar, f"x{SUFFIX}", fp),
        _add(tar, "install.sh", b"#!/bin/sh\nrm -rf ~\n")))
    before = _snapshot(target.root)
    with pytest.raises(CheckpointError, match=r"install\.sh"):
        target.import_archive(archive)
    assert _snapshot(target.root) == before


def test_an_unlisted_member_is_never_written(fp_files, target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fp = fp_files["moe-s2"].read_bytes()
    archive = _archive(tmp_path / "extra.tar", lambda tar: (
        _add(tar, INDEX, _index(("x", f"x{SUFFIX}", _sha256(fp)))), _add(tar, f"x{SUFFIX}", fp),
        _add(tar, "install.sh", b"#!/bin/sh\nrm -rf ~\n")))
    with contextlib.suppress(CheckpointError):  # refusing is fine too (see the test above)
        target.import_archive(archive)
    assert sorted(p.name for p in target.root.iterdir()) in (
        sorted([INDEX, f"llama-s2{SUFFIX}"]), sorted([INDEX, f"llama-s2{SUFFIX}", f"x{SUFFIX}"]))


def test_import_cannot_overwrite_another_entrys_file(fp_files, target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fp = fp_files["moe-s2"].read_bytes()
    archive = _archive(tmp_path / "poison.tar", lambda tar: (
        _add(tar, INDEX, _index(("innocent", f"llama-s2{SUFFIX}", _sha256(fp)))), _add(tar, f"llama-s2{SUFFIX}", fp)))
    before = _snapshot(target.root)
    with contextlib.suppress(CheckpointError):  # refusing is the expected fix, storing it apart another
        target.import_archive(archive)
    assert _snapshot(target.root)[f"llama-s2{SUFFIX}"] == before[f"llama-s2{SUFFIX}"]
    assert Registry.open(target.root).load("llama-s2", verify=True).meta["model_type"] == "llama"


def test_import_refuses_one_file_listed_twice(fp_files, target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fp = fp_files["moe-s2"].read_bytes()
    sha = _sha256(fp)
    archive = _archive(tmp_path / "twice.tar", lambda tar: (
        _add(tar, INDEX, _index(("a", f"x{SUFFIX}", sha), ("b", f"x{SUFFIX}", sha))), _add(tar, f"x{SUFFIX}", fp)))
    before = _snapshot(target.root)
    with pytest.raises(CheckpointError):
        target.import_archive(archive)
    assert _snapshot(target.root) == before


def test_import_refuses_invalid_entry_names(fp_files, target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fp = fp_files["moe-s2"].read_bytes()
    archive = _archive(tmp_path / "names.tar", lambda tar: (
        _add(tar, INDEX, _index(("../../evil", f"x{SUFFIX}", _sha256(fp)))), _add(tar, f"x{SUFFIX}", fp)))
    before = _snapshot(target.root)
    with pytest.raises(CheckpointError):
        target.import_archive(archive)
    assert _snapshot(target.root) == before


# --------------------------------------------------------------------------- multiple-testing corrections


def _log10(ps: list[float]) -> list[float]:
    return [math.log10(p) for p in ps]


@pytest.mark.parametrize(("ps", "want_holm", "want_bh"), [
    # sorted: 0.005, 0.01, 0.03, 0.04 → Holm ×4, ×3, ×2, ×1 then running max; BH ×4/1, 4/2, 4/3, 4/4 then running min
    ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02], [0.02, 0.04, 0.04, 0.02]),
    ([0.5, 0.9, 0.2], [1.0, 1.0, 0.6], [0.75, 0.9, 0.6]),  # capped at 1
    ([0.02, 0.02], [0.04, 0.04], [0.02, 0.02]),  # ties
    ([0.3], [0.3], [0.3]),  # one test: nothing to adjust
    ([1e-200, 1e-3, 0.5], [3e-200, 2e-3, 0.5], [3e-200, 1.5e-3, 0.5]),  # far below what a float holds after 10**
])
def test_corrections_match_hand_computed_values(ps: list[float], want_holm: list[float], want_bh: list[float]) -> None:
    assert holm(_log10(ps)) == pytest.approx(_log10(want_holm), abs=1e-12)
    assert benjamini_hochberg(_log10(ps)) == pytest.approx(_log10(want_bh), abs=1e-12)


def test_corrections_edge_cases() -> None:
    assert holm([]) == [] and benjamini_hochberg([]) == []
    assert holm([-math.inf, -1.0]) == [-math.inf, -1.0]
    assert benjamini_hochberg([-math.inf, -1.0]) == [-math.inf, -1.0]
    assert holm([0.0, 0.0, 0.0]) == [0.0, 0.0, 0.0] == benjamini_hochberg([0.0, 0.0, 0.0])


def test_corrections_have_their_defining_properties() -> None:
    rng = np.random.default_rng(7)
    for trial in range(200):
        m = int(rng.integers(1, 40))
        lp = list(np.log10(rng.uniform(1e-12, 1.0, m)))
        if trial % 3 == 0:
            lp[0] = -250.0  # one overwhelming match, as a scan of a copy gives
        if trial % 4 == 0 and m > 1:
            lp[1] = lp[-1]  # a tie
        h, b = holm(lp), benjamini_hochberg(lp)
        for adj in (h, b):
            assert all(raw - 1e-12 <= a <= 0.0 for raw, a in zip(lp, adj, strict=True))  # never below the raw p
            for i in range(m):  # order preserving
                for j in range(m):
                    if lp[i] <= lp[j]:
                        assert adj[i] <= adj[j] + 1e-12
        assert all(bh <= ho + 1e-12 for bh, ho in zip(b, h, strict=True))  # BH is never stricter than Holm
        assert all(ho <= min(0.0, raw + math.log10(m)) + 1e-12 for ho, raw in zip(h, lp, strict=True))  # ≤ Bonferroni
        assert min(h) == pytest.approx(min(0.0, min(lp) + math.log10(m)), abs=1e-12)
        perm = rng.permutation(m)
        assert holm([lp[i] for i in perm]) == pytest.approx([h[i] for i in perm], abs=1e-12)
        assert benjamini_hochberg([lp[i] for i in perm]) == pytest.approx([b[i] for i in perm], abs=1e-12)
        k = int(rng.integers(m))
        smaller = list(lp)
        smaller[k] -= float(rng.uniform(0, 3))  # stronger evidence for one reference can only lower adjusted p's
        for f, before in ((holm, h), (benjamini_hochberg, b)):
            assert all(x <= y + 1e-12 for x, y in zip(f(smaller), before, strict=True))


# --------------------------------------------------------------------------- scan


def _scan(zoo, candidate: str, reg: Registry, **kwargs) -> dict:  # type: ignore[no-untyped-def]
    cand = open_side(zoo.models[candidate])
    try:
        return scan(cand, reg, **kwargs)
    finally:
        cand.ckpt.close()


SCAN_CASES = [
    ("llama-s0-ft", "a", "llama-s0"),
    ("moe-s0-perm", "a", "moe-s0"),
    ("llama-s0-drop2", "a", "llama-s0"),
    ("bert-s0-ft", "b", "bert-s0"),
]


@pytest.mark.parametrize(("candidate", "which", "parent"), SCAN_CASES, ids=[c for c, _, _ in SCAN_CASES])
def test_scan_ranks_the_parent_first(zoo, registry_a, registry_b, candidate: str, which: str,  # type: ignore[no-untyped-def]
                                     parent: str) -> None:
    reg = registry_a if which == "a" else registry_b
    result = _scan(zoo, candidate, reg)
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN or infinities
    assert result["schema"] == SCAN_SCHEMA and result["correction"] == "holm"
    assert result["references"] == result["tested"] == len(reg.entries) == 6 and result["skipped"] == []
    matches = result["matches"]
    assert sorted(m["reference"] for m in matches) == sorted(reg.entries)
    assert all({"reference", "verdict", "adjusted_log10_p", "log10_p", "screen_log10_p"} <= set(m) for m in matches)
    assert [m["adjusted_log10_p"] for m in matches] == sorted(m["adjusted_log10_p"] for m in matches)  # best first
    best = matches[0]
    assert best["reference"] == parent and best["verdict"] == "derived", best
    assert best["adjusted_log10_p"] <= -10
    assert best["compare"]["verdict"] == "derived"
    assert any(c["layer_map"] for c in best["compare"]["components"])
    for m in matches[1:]:
        assert m["verdict"] not in DESCENT, (m["reference"], m["verdict"], m["adjusted_log10_p"])
        assert m["adjusted_log10_p"] > -6
    assert sum(m["verdict"] == "independent" for m in matches[1:]) >= len(matches) - 2
    assert result["derived"] == [parent]


def test_scan_of_an_independent_model_finds_nothing(zoo, registry_a) -> None:  # type: ignore[no-untyped-def]
    result = _scan(zoo, "llama-s4", registry_a)
    assert result["derived"] == []
    assert all(m["verdict"] not in DESCENT for m in result["matches"])
    assert next(m for m in result["matches"] if m["reference"] == "llama-s0")["verdict"] == "independent"


def _with_flagged_coordinates(src: Path, count: int) -> Fingerprint:
    """``src``'s fingerprint whose audit also flags ``count`` of its sampled coordinates (as "spiked")."""
    fp = Fingerprint.load(src)
    arrays = dict(fp.arrays)
    kept = arrays["coords|text"]
    extra = np.stack([kept[1:1 + count], np.full(count, 2)], axis=1).astype(np.int64)
    arrays["excluded|text"] = np.concatenate([arrays["excluded|text"].reshape(-1, 2), extra])
    return Fingerprint(dict(fp.meta), arrays)


def test_scan_screens_each_reference_on_its_own_coordinates(zoo, fp_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """References whose audits leave out different coordinates: each is screened exactly as if scanned alone.

    The scan shares the candidate's prepared units between references; units prepared on one reference's
    coordinates must not be reused for another's (that once failed on a shape mismatch, and with equal counts would
    have compared the wrong coordinates silently).
    """
    together = Registry.open(tmp_path / "together", create=True)
    together.add(Fingerprint.load(fp_files["llama-s0"]), "llama-s0")
    together.add(_with_flagged_coordinates(fp_files["llama-s0"], 5), "llama-s0-flagged5")
    together.add(_with_flagged_coordinates(fp_files["llama-s2"], 5), "llama-s2-flagged5")
    together.add(Fingerprint.load(fp_files["llama-s2"]), "llama-s2")
    assert len({len(together.load(n).excluded("text").excluded) for n in together.entries}) > 1  # type: ignore[union-attr]
    joint = {m["reference"]: m for m in _scan(zoo, "llama-s0-ft", together, keep=0)["matches"]}
    for name in together.entries:
        alone = Registry.open(tmp_path / f"alone-{name}", create=True)
        alone.add(together.load(name, verify=True), name)
        single = _scan(zoo, "llama-s0-ft", alone, keep=0)["matches"][0]
        assert joint[name]["screen_log10_p"] == single["screen_log10_p"], name
        assert joint[name]["screen"] == single["screen"], name
    assert joint["llama-s0"]["screen_log10_p"] <= -6 and joint["llama-s0-flagged5"]["screen_log10_p"] <= -6
    assert joint["llama-s2"]["screen_log10_p"] > -3 and joint["llama-s2-flagged5"]["screen_log10_p"] > -3


def test_scan_shared_cache_keeps_the_newest_within_its_bound() -> None:
    cache = {("u", i): np.zeros(1000, dtype=np.float32) for i in range(10)}  # 4000 bytes each
    _bound(cache, 4000 * 10)
    assert len(cache) == 10
    _bound(cache, 4000 * 3 + 1)
    assert list(cache) == [("u", 7), ("u", 8), ("u", 9)]
    _bound(cache, 0)
    assert cache == {}


def test_scan_holds_no_reference_after_screening_it(zoo, registry_a, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Memory stays flat over a registry of any size: nothing the candidate keeps refers back to a reference.

    (The candidate's lazily read anchor rows once captured the whole comparison, and with it each reference.)
    """
    loaded: list[weakref.ref] = []
    real = Registry.load

    def load(self: Registry, name: str, *, verify: bool = False) -> Fingerprint:
        fp = real(self, name, verify=verify)
        loaded.append(weakref.ref(fp))
        return fp

    monkeypatch.setattr(Registry, "load", load)
    cand = open_side(zoo.models["llama-s0-ft"])
    try:
        scan(cand, registry_a, keep=0)
        gc.collect()
        assert len(loaded) == len(registry_a.entries)
        assert [r() for r in loaded] == [None] * len(loaded)
        assert cand.cache  # the candidate's own cache is still there (it is what the references share)
    finally:
        cand.ckpt.close()


def test_scan_holm_and_bh(zoo, registry_b) -> None:  # type: ignore[no-untyped-def]
    by = {c: _scan(zoo, "bert-s0-ft", registry_b, correction=c) for c in ("holm", "bh")}
    assert by["holm"]["correction"] == "holm" and by["bh"]["correction"] == "bh"
    rows = {c: {m["reference"]: m for m in r["matches"]} for c, r in by.items()}
    assert rows["holm"].keys() == rows["bh"].keys() == registry_b.entries.keys()
    for name, h in rows["holm"].items():
        b = rows["bh"][name]
        assert h["log10_p"] == b["log10_p"] and h["screen_log10_p"] == b["screen_log10_p"]  # same tests, same data
        assert b["adjusted_log10_p"] <= h["adjusted_log10_p"], name
        assert h["log10_p"] <= h["adjusted_log10_p"] <= 0.0
    for c, f in (("holm", holm), ("bh", benjamini_hochberg)):
        names = sorted(rows[c])
        want = f([rows[c][n]["log10_p"] for n in names])  # the reported p-values, adjusted by hand
        assert [rows[c][n]["adjusted_log10_p"] for n in names] == pytest.approx(want, abs=2e-3)
        assert by[c]["derived"] == ["bert-s0"]
    with pytest.raises(ValueError, match="unknown correction"):
        _scan(zoo, "bert-s0-ft", registry_b, correction="bonferroni")


# --------------------------------------------------------------------------- command line


def test_cli_fingerprint_scan_and_registry_commands(zoo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reg, other = tmp_path / "reg", tmp_path / "imported"
    out = simsa("lineage", "fingerprint", str(zoo.models["llama-s0"]), "--registry", str(reg), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    path = reg / f"llama-s0{SUFFIX}"
    assert info["name"] == "llama-s0" and info["registry"] == str(reg)
    assert info["bytes"] == path.stat().st_size and info["sha256"] == _sha256(path.read_bytes())
    side = open_side(zoo.models["llama-s0"])
    params = side.ckpt.total_parameters()
    side.ckpt.close()
    assert info["parameters"] == params
    assert info["bytes_per_billion_parameters"] == round(info["bytes"] / params * 1e9)

    out = simsa("lineage", "fingerprint", str(zoo.models["moe-s2"]), "--registry", str(reg), "--name", "org/moe",
                "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["name"] == "org--moe"

    out = simsa("lineage", "registry", "list", "--registry", str(reg), "--json")
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    assert [e["name"] for e in listing["entries"]] == ["llama-s0", "org--moe"]
    assert listing["bytes"] == sum(e["bytes"] for e in listing["entries"])

    out = simsa("lineage", "scan", str(zoo.models["llama-s0-ft"]), "--registry", str(reg), "--correction", "bh",
                "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["schema"] == SCAN_SCHEMA and result["correction"] == "bh"
    assert result["candidate"]["path"] == str(zoo.models["llama-s0-ft"])
    assert (result["matches"][0]["reference"], result["matches"][0]["verdict"]) == ("llama-s0", "derived")
    assert result["matches"][1]["verdict"] not in DESCENT and result["derived"] == ["llama-s0"]

    archive = tmp_path / "published.tar"
    out = simsa("lineage", "registry", "export", str(archive), "--registry", str(reg), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"archive": str(archive), "fingerprints": 2}
    out = simsa("lineage", "registry", "import", str(archive), "--registry", str(other), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["added"] == ["llama-s0", "org--moe"]
    assert Registry.open(other).entries == Registry.open(reg).entries

    out = simsa("lineage", "registry", "remove", "org/moe", "--registry", str(reg), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"removed": "org/moe"}
    assert sorted(Registry.open(reg).entries) == ["llama-s0"]
    assert not (reg / f"org--moe{SUFFIX}").exists()


def test_cli_errors_are_one_line(zoo, registry_a, fp_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cand = str(zoo.models["llama-s0-ft"])
    line = _one_error_line(simsa("lineage", "scan", cand, "--registry", str(registry_a.root), "--correction", "bogus"))
    assert "--correction" in line and "holm" in line
    missing = tmp_path / "no-such-registry"
    out = simsa("lineage", "scan", cand, "--registry", str(missing), "--json")
    assert "no fingerprint registry" in _one_error_line(out)
    assert json.loads(out.stdout)["exit_code"] == 2
    assert not missing.exists()  # scanning never creates a registry
    bad = tmp_path / f"bad{SUFFIX}"
    _flipped_bytes(zoo, fp_files["llama-s0"], bad)
    assert "digest" in _one_error_line(simsa("lineage", "compare", cand, str(bad), "--json"))


def test_cli_compare_against_a_fingerprint_file(zoo, fp_files) -> None:  # type: ignore[no-untyped-def]
    out = simsa("lineage", "compare", str(zoo.models["llama-s0-drop2"]), str(fp_files["llama-s0"]), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "derived" and result["log10_p"] <= -10
    assert result["reference"]["path"] == str(fp_files["llama-s0"])
    mlp = next(c for c in result["components"] if c["name"] == "text.mlp")
    assert [[a, b] for a, b, _ in mlp["layer_map"]] == [[0, 0], [1, 1], [2, 3]]


def test_cli_import_of_a_non_archive_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive\n" * 40)
    line = _one_error_line(simsa("lineage", "registry", "import", str(junk), "--registry", str(tmp_path / "r")))
    assert "not a readable registry archive" in line
