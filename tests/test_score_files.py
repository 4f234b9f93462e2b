"""Score files: parsing CSV and JSON into ScoreInput, one clear error per malformed file, and validation."""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import EXAMPLE
from simsa.errors import InputError
from simsa.program.loader import load_program
from simsa.program.schema import Program
from simsa.services.score_files import MAX_ROW_PROBLEMS, parse_file, read_capped, read_score_file
from simsa.services.scores import FIELDS, MAX_SCORE_MAGNITUDE, ScoreInput, validate

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
    ("missing-value-column", "stage,team,source\nstage-1,baekdu,bench:nia\n",
     "{path}:1: no 'value' column (required: stage, team, source, value)"),
    ("non-numeric-value", HEADER + "\nstage-1,baekdu,bench:nia,0.7,,,\nstage-1,halla,bench:nia,high,,,\n",
     "{path}:3: value must be a number, got 'high'"),
    ("non-numeric-stderr", HEADER + "\nstage-1,baekdu,bench:nia,0.7,small,,\n",
     "{path}:2: stderr must be a number, got 'small'"),
    ("unknown-column", "stage,team,source,vaule\nstage-1,baekdu,bench:nia,0.7\n",
     "{path}:1: unknown column 'vaule' (columns: " + ", ".join(FIELDS) + ")"),
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
    assert parse_error(path) == f"{path}: not valid UTF-8 (offset {offset}); save the file as UTF-8"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert parse_error(tmp_path / "nope.csv") == f"{tmp_path / 'nope.csv'}: file not found"
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert parse_error(folder) == f"{folder}: not a regular file (a directory); give a .csv or .json file"


# --------------------------------------------------------------------------- files that are not what they seem

KOREAN_CSV = ("stage,team,source,value,rater,note\n"
              "stage-1,baekdu,panel:expert,82.5,심사위원-1,발표 자료가 충실함\n"
              "stage-1,halla,panel:expert,77,심사위원-1,재현성 보완 필요\n")


def run_in_thread(fn: Callable[[], object], seconds: float = 20) -> object:
    """Run fn with a deadline: reading a FIFO or a device would block or never end, which is the bug tested.

    A daemon thread, so that a reader stuck in open() or read() fails the test instead of hanging the session.
    """
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still reading after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


def test_cp949_csv_from_korean_spreadsheet_software_is_converted_with_a_notice(tmp_path: Path) -> None:
    data = KOREAN_CSV.encode("cp949")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    path = write(tmp_path, "scores.csv", data)
    parsed = read_score_file(path)
    assert [(i.team, i.rater, i.note, i.value) for i in parsed.items] == [
        ("baekdu", "심사위원-1", "발표 자료가 충실함", 82.5), ("halla", "심사위원-1", "재현성 보완 필요", 77.0)]
    assert parsed.encoding == "cp949"
    assert parsed.notices == [f"{path}: converted from CP949 (Korean Windows encoding) to UTF-8"]
    assert parse_file(path) == parsed.items  # the list-returning reader callers already use


def test_utf8_and_utf16_files_read_alike(tmp_path: Path) -> None:
    plain = read_score_file(write(tmp_path, "a.csv", KOREAN_CSV))
    assert plain.notices == [] and plain.encoding == "utf-8"
    for codec in ("utf-16", "utf-16-be"):
        data = KOREAN_CSV.encode(codec) if codec == "utf-16" else b"\xfe\xff" + KOREAN_CSV.encode(codec)
        path = write(tmp_path, f"{codec}.csv", data)
        parsed = read_score_file(path)
        assert [i.note for i in parsed.items] == [i.note for i in plain.items]
        assert parsed.notices == [f"{path}: converted from UTF-16"]


def test_deeply_nested_json_is_one_line_error(tmp_path: Path) -> None:
    path = write(tmp_path, "scores.json", "[" * 200_000 + "]" * 200_000)
    assert parse_error(path) == f"{path}: JSON nested too deeply to be a score file"
    nested_field = write(tmp_path, "field.json", json.dumps([{**ROW, "note": [[["deep"]]]}]))
    assert parse_error(nested_field) == f"{nested_field}: scores[0]: note must be text or a number, got list"


@pytest.mark.parametrize(("name", "content", "shown"), [
    ("scores.json", '[{"stage": "stage-1", "team": "baekdu", "source": "bench:nia", "value": 1%s}]' % ("0" * 400),
     "an integer of 401 digits"),
    ("scores.json", json.dumps([{**ROW, "value": 2e12}]), "2000000000000.0"),
    ("scores.json", json.dumps([{**ROW, "value": -1e13}]), "-10000000000000.0"),
    ("scores.csv", HEADER + "\nstage-1,baekdu,bench:nia,1e400,,,\n", "'1e400'"),
    ("scores.csv", HEADER + "\nstage-1,baekdu,bench:nia,1%s,,,\n" % ("0" * 400), "'100000000000000000000"),
    ("scores.csv", HEADER + "\nstage-1,baekdu,bench:nia,-inf,,,\n", "'-inf'"),
], ids=["json-10**400", "json-2e12", "json--1e13", "csv-1e400", "csv-10**400", "csv--inf"])
def test_huge_numbers_are_refused_when_read(name: str, content: str, shown: str, tmp_path: Path) -> None:
    path = write(tmp_path, name, content)
    message = parse_error(path)
    assert f"value must be a finite number of magnitude at most {MAX_SCORE_MAGNITUDE:g}, got {shown}" in message
    assert len(message) < 400


def test_score_and_stderr_bounds_are_inclusive(tmp_path: Path) -> None:
    ok = write(tmp_path, "ok.json", json.dumps([{**ROW, "value": MAX_SCORE_MAGNITUDE, "stderr": MAX_SCORE_MAGNITUDE}]))
    assert parse_file(ok)[0].value == MAX_SCORE_MAGNITUDE
    bad = write(tmp_path, "bad.json", json.dumps([{**ROW, "stderr": 1.5e12}]))
    assert "stderr must be a finite number of magnitude at most" in parse_error(bad)


def test_json_integer_too_long_for_python_is_one_line_error(tmp_path: Path) -> None:
    path = write(tmp_path, "scores.json", '[{"value": %s}]' % ("7" * 5000))
    assert parse_error(path).startswith(f"{path}: unreadable JSON: ")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "scores.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as caught:
        run_in_thread(lambda: parse_file(fifo))
    assert str(caught.value) == f"{fifo}: not a regular file (a FIFO); give a .csv or .json file"


def test_device_is_refused_without_reading_forever(tmp_path: Path) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    link = tmp_path / "zero.csv"
    link.symlink_to("/dev/zero")
    with pytest.raises(InputError) as caught:
        run_in_thread(lambda: parse_file(link))
    assert str(caught.value) == f"{link}: not a regular file (a character device); give a .csv or .json file"
    assert parse_error(Path("/dev/zero")) == "/dev/zero: unsupported score file type '(none)'; use .csv or .json"


def test_size_cap_counts_bytes_read_not_the_size_stat_reports(tmp_path: Path) -> None:
    path = write(tmp_path, "scores.csv", b"x" * 10)
    assert read_capped(path, cap=10) == b"x" * 10
    with pytest.raises(InputError, match="larger than 9 bytes"):
        read_capped(path, cap=9)
    proc = Path("/proc/self/status")  # stat says 0 bytes; reading gives more
    if proc.exists() and proc.stat().st_size == 0:
        with pytest.raises(InputError, match="larger than 16 bytes"):
            read_capped(proc, cap=16)


def test_every_bad_csv_row_is_named_in_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, "scores.csv", HEADER + "\n"
                 "stage-1,baekdu,bench:nia,0.7,,,\n"
                 "stage-1,halla,bench:nia,high,,,\n"
                 "stage-1,jiri,bench:nia,0.6,,,\n"
                 "stage-1,,bench:nia,0.5,,,\n"
                 "stage-1,seorak,bench:nia,0.4,small,,\n")
    assert parse_error(path) == (f"3 invalid rows: {path}:3: value must be a number, got 'high'; "
                                 f"{path}:5: team is required; {path}:6: stderr must be a number, got 'small'")


def test_many_bad_rows_are_named_up_to_a_limit(tmp_path: Path) -> None:
    rows = [f"stage-1,team-{i},bench:nia,n/a,,," for i in range(MAX_ROW_PROBLEMS + 5)]
    path = write(tmp_path, "scores.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    message = parse_error(path)
    assert message.startswith(f"{MAX_ROW_PROBLEMS + 5} invalid rows: {path}:2: value must be a number")
    assert message.count("value must be a number") == MAX_ROW_PROBLEMS
    assert message.endswith(f"{path}:{MAX_ROW_PROBLEMS + 1}: value must be a number, got 'n/a'; and 5 more")


def test_every_bad_json_record_is_named_in_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, "scores.json", json.dumps([ROW, {**ROW, "value": "x"}, 7, {**ROW, "example": "maybe"}]))
    assert parse_error(path) == (f"3 invalid rows: {path}: scores[1]: value must be a number, got 'x'; "
                                 f"{path}: scores[2] is not an object; "
                                 f"{path}: scores[3]: example must be true/false, got 'maybe'")


# --------------------------------------------------------------------------- validation against the example


def item(**kw: object) -> ScoreInput:
    base: dict = {"stage": "stage-1", "team": "baekdu", "source": "panel:expert", "value": 70.0, "rater": "e1"}
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
    ("negative-stderr", item(stderr=-0.1), ["stderr must be a non-negative number of at most 1e+12, got -0.1"]),
    ("nan-stderr", item(stderr=math.nan), ["stderr must be a non-negative number of at most 1e+12, got nan"]),
    ("nan-value", item(value=math.nan), ["value must be a finite number of magnitude at most 1e+12, got nan"]),
    ("infinite-value", item(value=math.inf), ["value must be a finite number of magnitude at most 1e+12, got inf"]),
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
                 "stage-1,baekdu,panel:expert,95,,e1,\n"
                 "stage-1,halla,panel:expert,120,,e1,\n")
    good, bad = parse_file(path)
    validate(program, good)
    with pytest.raises(InputError) as caught:
        validate(program, bad)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: panel:expert value 120 is outside ")
    assert "[0, 100]" in message and "'expert'" in message


def test_nan_in_a_file_is_refused_when_read(tmp_path: Path) -> None:
    path = write(tmp_path, "scores.json", '[{"stage": "stage-1", "team": "jiri", "source": "bench:nia", '
                 '"value": NaN}]')
    assert parse_error(path) == (f"{path}: scores[0]: value must be a finite number of magnitude at most "
                                 f"{MAX_SCORE_MAGNITUDE:g}, got nan")
