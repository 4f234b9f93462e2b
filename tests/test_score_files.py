"""Score files: parsing CSV and JSON into ScoreInput, one clear error per malformed file, and validation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers import EXAMPLE
from simsa.errors import InputError
from simsa.program.loader import load_program
from simsa.program.schema import Program
from simsa.services.scores import FIELDS, ScoreInput, parse_file, validate

HEADER = "stage,team,source,value,stderr,rater,example"


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(EXAMPLE).program


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def parse_error(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        parse_file(path)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    return message


# --------------------------------------------------------------------------- valid files


def test_valid_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "scores.csv", "\ufeff" + HEADER + "\n"
                 "stage-1,baekdu,bench:nia,0.71,0.02,,\n"
                 "stage-1, halla ,panel:expert,82.5,,judge-1,yes\n"
                 "stage-2,gaya,bench:safety,0.9,,,0\n")
    items = parse_file(path)
    assert items == [
        ScoreInput(stage="stage-1", team="baekdu", source="bench:nia", value=0.71, stderr=0.02),
        ScoreInput(stage="stage-1", team="halla", source="panel:expert", value=82.5, rater="judge-1", example=True),
        ScoreInput(stage="stage-2", team="gaya", source="bench:safety", value=0.9),
    ]
    assert [i.where for i in items] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert items[0].run_id is None and items[0].evidence is None and items[0].note is None


def test_valid_json_list_and_wrapped_object(tmp_path: Path) -> None:
    records = [
        {"stage": "stage-1", "team": "jiri", "source": "panel:user", "value": 7, "stderr": "0.5",
         "rater": "u-3", "run_id": "run-9", "evidence": "https://example.org/r9", "note": "re-run", "example": True},
        {"stage": "stage-1", "team": "seorak", "source": "bench:global-common", "value": "0.64", "example": "no"},
    ]
    expected = [
        ScoreInput(stage="stage-1", team="jiri", source="panel:user", value=7.0, stderr=0.5, rater="u-3",
                   run_id="run-9", evidence="https://example.org/r9", note="re-run", example=True),
        ScoreInput(stage="stage-1", team="seorak", source="bench:global-common", value=0.64),
    ]
    listed = write(tmp_path, "list.json", json.dumps(records))
    wrapped = write(tmp_path, "wrapped.json", json.dumps({"scores": records}))
    assert parse_file(listed) == expected
    assert parse_file(wrapped) == expected
    assert [i.where for i in parse_file(listed)] == [f"{listed}: scores[0]", f"{listed}: scores[1]"]


# --------------------------------------------------------------------------- malformed CSV

CSV_CASES = [
    ("missing-value", HEADER + "\nstage-1,baekdu,bench:nia,0.7,,,\nstage-1,halla,bench:nia,,,,\n",
     "{path}:3: value is required"),
    ("missing-team", HEADER + "\nstage-1,,bench:nia,0.7,,,\n", "{path}:2: team is required"),
    ("missing-value-column", "stage,team,source\nstage-1,baekdu,bench:nia\n", "{path}:2: value is required"),
    ("non-numeric-value", HEADER + "\nstage-1,baekdu,bench:nia,0.7,,,\nstage-1,halla,bench:nia,high,,,\n",
     "{path}:3: value must be a number, got 'high'"),
    ("non-numeric-stderr", HEADER + "\nstage-1,baekdu,bench:nia,0.7,small,,\n",
     "{path}:2: stderr must be a number, got 'small'"),
    ("unknown-field", "stage,team,source,vaule\nstage-1,baekdu,bench:nia,0.7\n",
     "{path}:2: unknown field 'vaule' (fields: " + ", ".join(FIELDS) + ")"),
    ("extra-columns", HEADER + "\nstage-1,baekdu,bench:nia,0.7,,,\nstage-1,halla,bench:nia,0.6,,,,surplus\n",
     "{path}:3: more values than header columns"),
    ("bad-example-flag", HEADER + "\nstage-1,baekdu,bench:nia,0.7,,,maybe\n",
     "{path}:2: example must be true/false, got 'maybe'"),
    ("empty-file", "", "{path}: empty CSV file (expected a header row: " + ", ".join(FIELDS) + ")"),
    ("header-only", HEADER + "\n", "{path}: contains no scores"),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_malformed_csv(content: str, expected: str, tmp_path: Path) -> None:
    path = write(tmp_path, "scores.csv", content)
    assert parse_error(path) == expected.format(path=path)


def test_csv_row_after_a_multiline_field_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "scores.csv", "stage,team,source,value,note\n"
                 'stage-1,baekdu,bench:nia,0.7,"two\nlines"\n'
                 "stage-1,halla,bench:nia,n/a,\n")
    assert parse_error(path) == f"{path}:4: value must be a number, got 'n/a'"


# --------------------------------------------------------------------------- malformed JSON

ROW = {"stage": "stage-1", "team": "baekdu", "source": "bench:nia", "value": 0.7}

JSON_CASES = [
    ("malformed", '[\n  {"stage": "stage-1",\n   "team": }\n]\n', "{path}:3: malformed JSON: Expecting value"),
    ("missing-comma", '{"scores": [\n  {"stage": "stage-1"}\n  {"stage": "stage-2"}\n]}\n',
     "{path}:3: malformed JSON: Expecting ',' delimiter"),
    ("empty-file", "", "{path}:1: malformed JSON: Expecting value"),
    ("top-level-object-without-scores", json.dumps(ROW),
     '{path}: expected a list of score objects or {{"scores": [...]}}'),
    ("top-level-string", '"stage-1"', '{path}: expected a list of score objects or {{"scores": [...]}}'),
    ("scores-not-a-list", json.dumps({"scores": ROW}),
     '{path}: expected a list of score objects or {{"scores": [...]}}'),
    ("item-not-an-object", json.dumps([ROW, ["stage-1", "halla"]]), "{path}: scores[1] is not an object"),
    ("empty-list", "[]", "{path}: contains no scores"),
    ("missing-value", json.dumps([ROW, {**ROW, "value": None}]), "{path}: scores[1]: value is required"),
    ("missing-source", json.dumps([{k: v for k, v in ROW.items() if k != "source"}]),
     "{path}: scores[0]: source is required"),
    ("non-numeric-value", json.dumps([{**ROW, "value": "0,7"}]),
     "{path}: scores[0]: value must be a number, got '0,7'"),
    ("boolean-value", json.dumps([{**ROW, "value": True}]), "{path}: scores[0]: value must be a number, got True"),
    ("unknown-field", json.dumps([{**ROW, "score": 1}]),
     "{path}: scores[0]: unknown field 'score' (fields: " + ", ".join(FIELDS) + ")"),
    ("bad-example-flag", json.dumps([{**ROW, "example": "sometimes"}]),
     "{path}: scores[0]: example must be true/false, got 'sometimes'"),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES])
def test_malformed_json(content: str, expected: str, tmp_path: Path) -> None:
    path = write(tmp_path, "scores.json", content)
    assert parse_error(path) == expected.format(path=path)


# --------------------------------------------------------------------------- malformed files of any kind


@pytest.mark.parametrize("name", ["scores.txt", "scores.xlsx", "scores"])
def test_unsupported_extension(name: str, tmp_path: Path) -> None:
    path = write(tmp_path, name, HEADER + "\nstage-1,baekdu,bench:nia,0.7,,,\n")
    suffix = path.suffix or "(none)"
    assert parse_error(path) == f"{path}: unsupported score file type {suffix!r}; use .csv or .json"


@pytest.mark.parametrize("name", ["scores.csv", "scores.json"])
def test_non_utf8(name: str, tmp_path: Path) -> None:
    content = (HEADER + "\nstage-1,baekdu,bench:nia,0.7,,J\xfcrgen,\n").encode("latin-1")
    path = write(tmp_path, name, content)
    offset = content.index("ü".encode("latin-1"))
    assert parse_error(path) == f"{path}: not valid UTF-8 (offset {offset})"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert parse_error(tmp_path / "nope.csv") == f"{tmp_path / 'nope.csv'}: file not found"
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert parse_error(folder) == f"{folder}: file not found"


# --------------------------------------------------------------------------- validation against the example


def item(**kw: object) -> ScoreInput:
    base: dict = {"stage": "stage-1", "team": "baekdu", "source": "panel:expert", "value": 70.0}
    return ScoreInput(**{**base, **kw})


@pytest.mark.parametrize("score", [
    item(),
    item(value=0.0),
    item(value=100.0, stderr=0.0),
    item(source="bench:nia", value=1.0),
    item(source="panel:user", value=1234.5),
    item(stage="stage-2", team="gaya", source="bench:safety", value=0.65, stderr=0.01),
], ids=["expert", "expert-low-end", "expert-high-end", "bench-default-range", "relative-to-best", "gate-source"])
def test_valid_scores_pass(score: ScoreInput, program: Program) -> None:
    validate(program, score)


# Each case: the message's start, then what else it must mention.
VALIDATE_CASES = [
    ("unknown-team", item(team="nobody"),
     ["unknown team 'nobody'", "baekdu, halla, jiri, seorak, taebaek, gaya"]),
    ("unknown-stage", item(stage="stage-9"), ["unknown stage 'stage-9'", "stage-1, stage-2"]),
    ("unknown-source", item(source="bench:vibes"),
     ["stage 'stage-1' has no criterion or gate fed by 'bench:vibes'",
      "bench:nia, bench:global-common, bench:team-chosen, panel:expert, panel:user"]),
    ("source-of-another-stage", item(source="bench:safety"),
     ["stage 'stage-1' has no criterion or gate fed by 'bench:safety'"]),
    ("above-raw-range", item(value=120.0), ["panel:expert value 120 is outside ", "[0, 100]", "'expert'"]),
    ("below-raw-range", item(value=-0.5), ["panel:expert value -0.5 is outside ", "[0, 100]", "'expert'"]),
    ("above-default-range", item(source="bench:nia", value=71.0), ["bench:nia value 71 is outside ", "[0, 1]",
                                                                   "'nia'"]),
    ("negative-relative-to-best", item(source="panel:user", value=-1.0),
     ["panel:user value -1 is negative", "relative_to_best"]),
    ("negative-stderr", item(stderr=-0.1), ["stderr must be a non-negative number, got -0.1"]),
    ("nan-stderr", item(stderr=math.nan), ["stderr must be a non-negative number, got nan"]),
    ("nan-value", item(value=math.nan), ["value must be a finite number, got nan"]),
    ("infinite-value", item(value=math.inf), ["value must be a finite number, got inf"]),
]


@pytest.mark.parametrize(("score", "expected"), [c[1:] for c in VALIDATE_CASES], ids=[c[0] for c in VALIDATE_CASES])
def test_invalid_scores_are_refused(score: ScoreInput, expected: list[str], program: Program) -> None:
    with pytest.raises(InputError) as caught:
        validate(program, score)
    message = str(caught.value)
    assert message.startswith(expected[0])
    assert all(part in message for part in expected[1:]), message


def test_validation_errors_name_the_file_and_line(program: Program, tmp_path: Path) -> None:
    path = write(tmp_path, "scores.csv", HEADER + "\n"
                 "stage-1,baekdu,panel:expert,95,,,\n"
                 "stage-1,halla,panel:expert,120,,,\n")
    good, bad = parse_file(path)
    validate(program, good)
    with pytest.raises(InputError) as caught:
        validate(program, bad)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: panel:expert value 120 is outside ")
    assert "[0, 100]" in message and "'expert'" in message


def test_nan_in_a_file_is_refused_at_validation(program: Program, tmp_path: Path) -> None:
    path = write(tmp_path, "scores.json", '[{"stage": "stage-1", "team": "jiri", "source": "bench:nia", '
                 '"value": NaN}]')
    (score,) = parse_file(path)
    assert math.isnan(score.value)
    with pytest.raises(InputError) as caught:
        validate(program, score)
    assert str(caught.value) == f"{path}: scores[0]: value must be a finite number, got nan"
