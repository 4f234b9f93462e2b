"""Program files: `simsa program check` on the shipped example and on malformed files, and the line locator.

Every malformed file is a small mutation of BASE, a compact valid program with two stages, a nested criteria
tree, an elimination table in each stage and a min_score gate. Each error must be one line that starts with
`FILE:LINE: key.path:` (or `FILE:` alone where no line is meaningful) and says what is wrong.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

import pytest

from helpers import EXAMPLE
from simsa.cli.main import main
from simsa.errors import ProgramFileError
from simsa.files import FileReadError, read_limited
from simsa.program import tasknames
from simsa.program.loader import MAX_PROGRAM_BYTES, load_program, parse_program
from simsa.program.locate import dotted, index_lines, line_of

BASE = """\
[program]
id = "mini"
name = "Mini programme"

[[teams]]
id = "alpha"
name = "Team Alpha"
licence = "mit"

[[teams]]
id = "beta"
name = "Team Beta"
licence = "mit"
joins_at = "s2"

[[stages]]
id = "s1"
name = "Stage 1"
start = 2026-01-01
end = 2026-02-01
total_points = 100
tie_breakers = ["criterion:bench", "team_order"]

  [stages.elimination]
  advance_best = 1

  [[stages.criteria]]
  id = "bench"
  name = "Benchmarks"
  points = 60

    [[stages.criteria.children]]
    id = "math"
    name = "Maths"
    points = 40
    source = "bench:math"

    [[stages.criteria.children]]
    id = "code"
    name = "Code"
    points = 20
    source = "bench:code"
    normalisation = "minmax"

  [[stages.criteria]]
  id = "expert"
  name = "Expert review"
  points = 40
  source = "panel:expert"
  raw_range = [0, 100]

  [[stages.gates]]
  id = "safety"
  name = "Safety"
  kind = "min_score"
  source = "bench:safety"
  threshold = 0.5

[[stages]]
id = "s2"
name = "Stage 2"
start = 2026-03-01
end = 2026-04-01

  [stages.elimination]
  cut_lowest = 1

  [[stages.criteria]]
  id = "final"
  name = "Final review"
  points = 10
  source = "panel:user"
"""

# BASE with a suite behind each of its bench: sources, so that cross-references to suites and tasks are checked.
BASE_SUITES = BASE + """
[[suites]]
id = "math"
name = "Maths suite"

  [[suites.tasks]]
  task = "kmmlu"

[[suites]]
id = "code"
name = "Code suite"

  [[suites.tasks]]
  task = "simsa_kobest_copa"
  weight = 2

[[suites]]
id = "safety"
name = "Safety suite"

  [[suites.tasks]]
  task = "simsa_kosbi"
  normalisation = "chance_rescaled"
  chance = 0.5
"""
S2_END = "end = 2026-04-01"
ZERO_SHA = "0" * 64
PREVIOUS = f'  [stages.previous_decision]\n  file = "s1.json"\n  sha256 = "{ZERO_SHA}"\n'

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def mutate(old: str, new: str, base: str = BASE) -> str:
    """`base` (BASE by default) with its single occurrence of `old` replaced by `new`."""
    assert base.count(old) == 1, f"{old!r} must occur exactly once in the base program"
    return base.replace(old, new)


def line(text: str, anchor: str, nth: int = 1) -> int:
    """1-based number of the nth line of `text` that reads `anchor` (indentation ignored)."""
    hits = [i for i, ln in enumerate(text.split("\n"), start=1) if ln.strip() == anchor.strip()]
    assert len(hits) >= nth, f"{anchor!r} occurs {len(hits)} times"
    return hits[nth - 1]


def load_error(path: Path | str) -> str:
    with pytest.raises(ProgramFileError) as caught:
        load_program(path)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    return message


def test_base_program_is_valid() -> None:
    program = parse_program(BASE, "base.toml").program
    assert [s.id for s in program.stages] == ["s1", "s2"]
    assert [c.id for c, _, _ in program.stages[0].walk()] == ["bench", "math", "code", "expert"]


# --------------------------------------------------------------------------- malformed files, in-process


@dataclass(frozen=True)
class Bad:
    """A malformed program: BASE (or BASE_SUITES, base="suites") with `old` replaced by `new`; the error names
    `key` on the line reading `at`."""

    kind: str
    old: str
    new: str
    key: str | None
    at: str | None
    says: str
    nth: int = 1
    base: str = "plain"

    def text(self) -> str:
        return mutate(self.old, self.new, BASE_SUITES if self.base == "suites" else BASE)

    def expected_prefix(self, path: str) -> str:
        text = self.text()
        where = f"{path}:{line(text, self.at, self.nth)}:" if self.at else f"{path}:"
        return where + (f" {self.key}:" if self.key else "") + " "


MATH_POINTS = 'points = 40\n    source = "bench:math"'
EXPERT_POINTS = 'points = 40\n  source = "panel:expert"'
PROGRAM_TABLE = '[program]\nid = "mini"\nname = "Mini programme"\n'
SAFETY_GATE = '  [[stages.gates]]\n  id = "safety"'
MATHS_NAME = 'name = "Maths"'
BETA_NAME = 'name = "Team Beta"'
BETA_ID = 'id = "beta"'

BAD = [
    Bad("toml-syntax-error", 'name = "Maths"', 'name = "Maths', None, 'name = "Maths', "TOML syntax error: "),
    Bad("toml-duplicate-key", 'name = "Maths"', 'name = "Maths"\n    name = "Algebra"', None,
        'name = "Algebra"', "TOML syntax error: Cannot overwrite a value"),
    Bad("missing-program-table", PROGRAM_TABLE, "", "program", None, "required key is missing"),
    Bad("unknown-key-typo", MATH_POINTS, MATH_POINTS.replace("points", "pionts"),
        "stages[0].criteria[0].children[0].pionts", "pionts = 40", "unknown key (did you mean 'points'?"),
    Bad("unknown-top-level-key", PROGRAM_TABLE, "judges = 3\n\n" + PROGRAM_TABLE, "judges", "judges = 3",
        "unknown key"),
    Bad("unknown-key-in-second-stage-elimination", "cut_lowest = 1", "cut_lowset = 1",
        "stages[1].elimination.cut_lowset", "cut_lowset = 1", "did you mean 'cut_lowest'?"),
    Bad("wrong-type", EXPERT_POINTS, EXPERT_POINTS.replace("40", '"forty"'), "stages[0].criteria[1].points",
        'points = "forty"', "valid number"),
    Bad("zero-points", "points = 20", "points = 0", "stages[0].criteria[0].children[1].points", "points = 0",
        "greater than 0"),
    Bad("negative-points-second-stage", "  points = 10\n", "  points = -10\n", "stages[1].criteria[0].points",
        "points = -10", "greater than 0"),
    Bad("children-do-not-sum-to-parent", MATH_POINTS, MATH_POINTS.replace("40", "35"),
        "stages[0].criteria[0].points", "points = 60",
        "criterion 'bench' has 60 points but its children sum to 55 (math 35 + code 20)"),
    Bad("duplicate-team-id", 'id = "beta"', 'id = "alpha"', "teams[1].id", 'id = "alpha"',
        "team id 'alpha' is used twice", nth=2),
    Bad("duplicate-stage-id", 'id = "s2"', 'id = "s1"', "stages[1].id", 'id = "s1"',
        "stage id 's1' is used twice", nth=2),
    Bad("duplicate-criterion-id", 'id = "code"', 'id = "math"', "stages[0].criteria[0].children[1].id",
        'id = "math"', "criterion id 'math' is used twice in stage 's1'", nth=2),
    Bad("duplicate-gate-id", SAFETY_GATE, SAFETY_GATE + '\n  name = "Safety"\n  kind = "recorded"\n\n' + SAFETY_GATE,
        "stages[0].gates[1].id", 'id = "safety"', "gate id 'safety' is used twice", nth=2),
    Bad("unknown-source-kind", 'source = "bench:code"', 'source = "vibes:x"',
        "stages[0].criteria[0].children[1].source", 'source = "vibes:x"', "unknown score source 'vibes:x'"),
    Bad("unknown-normalisation", 'normalisation = "minmax"', 'normalisation = "zscore"',
        "stages[0].criteria[0].children[1].normalisation", 'normalisation = "zscore"', "(got 'zscore')"),
    Bad("misspelt-normalisation-key", 'normalisation = "minmax"', 'normalization = "minmax"',
        "stages[0].criteria[0].children[1].normalization", 'normalization = "minmax"',
        "did you mean 'normalisation'?"),
    Bad("tie-breaker-names-unknown-criterion", "criterion:bench", "criterion:speed", "stages[0].tie_breakers[0]",
        'tie_breakers = ["criterion:speed", "team_order"]', "tie-breaker 'criterion:speed' names no criterion"),
    Bad("unknown-tie-breaker", '"team_order"]', '"coin"]', "stages[0].tie_breakers[1]",
        'tie_breakers = ["criterion:bench", "coin"]', "unknown tie-breaker 'coin'"),
    Bad("stage-ends-before-it-starts", "end = 2026-02-01", "end = 2025-12-01", "stages[0].end",
        "end = 2025-12-01", "stage 's1' ends (2025-12-01) before it starts (2026-01-01)"),
    Bad("stages-out-of-order", "start = 2026-03-01", "start = 2025-03-01", "stages[1].start",
        "start = 2025-03-01", "stage 's2' starts before the stage listed before it ('s1')"),
    Bad("not-a-date", "start = 2026-01-01", 'start = "soon"', "stages[0].start", 'start = "soon"',
        "valid date"),
    Bad("joins-at-unknown-stage", 'joins_at = "s2"', 'joins_at = "s9"', "teams[1].joins_at", 'joins_at = "s9"',
        "team 'beta' joins_at 's9', which is not a stage (stages: s1, s2)"),
    Bad("leaf-without-source", '    source = "bench:code"\n', "", "stages[0].criteria[0].children[1].source",
        "[[stages.criteria.children]]", "leaf criterion 'code' needs a source", nth=2),
    Bad("inner-criterion-with-source", "points = 60\n", 'points = 60\n  source = "bench:all"\n',
        "stages[0].criteria[0].source", 'source = "bench:all"',
        "criterion 'bench' has children, so it cannot also have source"),
    Bad("min-score-gate-without-threshold", "  threshold = 0.5\n", "", "stages[0].gates[0].threshold",
        "[[stages.gates]]", "gate 'safety' of kind min_score needs both source and threshold"),
    Bad("recorded-gate-with-threshold", 'kind = "min_score"\n  source = "bench:safety"\n', 'kind = "recorded"\n',
        "stages[0].gates[0].threshold", "threshold = 0.5", "gate 'safety' of kind recorded takes no source"),
    Bad("unknown-gate-kind", 'kind = "min_score"', 'kind = "vibes"', "stages[0].gates[0].kind", 'kind = "vibes"',
        "(got 'vibes')"),
    Bad("uppercase-id", 'id = "expert"', 'id = "Expert"', "stages[0].criteria[1].id", 'id = "Expert"',
        "should match pattern"),
    Bad("id-with-space", 'id = "alpha"', 'id = "team alpha"', "teams[0].id", 'id = "team alpha"',
        "(got 'team alpha')"),
    Bad("total-points-mismatch", "total_points = 100", "total_points = 90", "stages[0].total_points",
        "total_points = 90", "stage 's1' declares total_points 90 but its criteria sum to 100"),
    Bad("raw-range-reversed", "raw_range = [0, 100]", "raw_range = [100, 0]", "stages[0].criteria[1].raw_range",
        "raw_range = [100, 0]", "raw_range must be [low, high] with low < high"),
    Bad("raw-range-empty", "raw_range = [0, 100]", "raw_range = [5, 5]", "stages[0].criteria[1].raw_range",
        "raw_range = [5, 5]", "low < high, got [5.0, 5.0]"),
    Bad("two-leaves-share-a-source", 'source = "bench:code"', 'source = "bench:math"',
        "stages[0].criteria[0].children[1].source", 'source = "bench:math"',
        "source 'bench:math' feeds both 'math' and 'code'", nth=2),
    Bad("negative-elimination-count", "advance_best = 1", "advance_best = -1", "stages[0].elimination.advance_best",
        "advance_best = -1", "greater than or equal to 0"),
    Bad("points-beyond-the-bound", "points = 20", "points = 1e308", "stages[0].criteria[0].children[1].points",
        "points = 1e308", "less than or equal to 1000000"),
    Bad("infinite-threshold", "threshold = 0.5", "threshold = inf", "stages[0].gates[0].threshold",
        "threshold = inf", "finite number"),
    Bad("nan-min-total", "advance_best = 1", "advance_best = 1\n  min_total = nan", "stages[0].elimination.min_total",
        "min_total = nan", "finite number"),
    Bad("raw-range-beyond-the-bound", "raw_range = [0, 100]", "raw_range = [0, 1e300]",
        "stages[0].criteria[1].raw_range", "raw_range = [0, 1e300]", "raw_range bounds must lie within ±1e+12"),
    Bad("misspelt-source-kind", 'source = "panel:expert"', 'source = "pannel:expert"',
        "stages[0].criteria[1].source", 'source = "pannel:expert"', "(did you mean 'panel:expert'?)"),
    Bad("tie-breaker-near-a-criterion", "criterion:bench", "criterion:bnech", "stages[0].tie_breakers[0]",
        'tie_breakers = ["criterion:bnech", "team_order"]', "names no criterion of stage 's1' (did you mean "
        "'criterion:bench'?)"),
    Bad("joins-at-near-a-stage", 'joins_at = "s2"', 'joins_at = "s22"', "teams[1].joins_at", 'joins_at = "s22"',
        "(stages: s1, s2) (did you mean 's2'?)"),
    Bad("participant-is-not-a-team", S2_END, S2_END + '\nparticipants = ["alpha", "bta"]', "stages[1].participants[1]",
        'participants = ["alpha", "bta"]', "participant 'bta' is not a team (teams: alpha, beta) (did you mean "
        "'beta'?)"),
    Bad("participant-listed-twice", S2_END, S2_END + '\nparticipants = ["alpha", "beta", "alpha"]',
        "stages[1].participants[2]", 'participants = ["alpha", "beta", "alpha"]',
        "participant 'alpha' is listed twice in stage 's2'"),
    Bad("joining-team-missing-from-participants", S2_END, S2_END + '\nparticipants = ["alpha"]',
        "stages[1].participants", 'participants = ["alpha"]',
        "team 'beta' joins_at 's2' but is not among its participants"),
    Bad("participants-on-the-first-stage", "total_points = 100", 'total_points = 100\nparticipants = ["alpha"]',
        "stages[0].participants", 'participants = ["alpha"]', "stage 's1' is the first stage"),
    Bad("previous-decision-on-the-first-stage", "advance_best = 1", "advance_best = 1\n" + PREVIOUS,
        "stages[0].previous_decision", "[stages.previous_decision]", "there is no previous decision to import"),
    Bad("participants-and-previous-decision", S2_END, S2_END + '\nparticipants = ["alpha", "beta"]\n' + PREVIOUS,
        "stages[1].previous_decision", "[stages.previous_decision]", "has both participants and previous_decision"),
    Bad("previous-decision-sha256-not-hex", S2_END, S2_END + "\n" + PREVIOUS.replace(ZERO_SHA, "abc123"),
        "stages[1].previous_decision.sha256", 'sha256 = "abc123"', "should match pattern"),
    Bad("previous-decision-absolute-path", S2_END, S2_END + "\n" + PREVIOUS.replace("s1.json", "/tmp/s1.json"),
        "stages[1].previous_decision.file", 'file = "/tmp/s1.json"', "must be relative to the program file's"),
    Bad("bench-source-misspelt", 'source = "bench:safety"', 'source = "bench:safty"', "stages[0].gates[0].source",
        'source = "bench:safty"', "source 'bench:safty' names no suite (suites: math, code, safety) (did you mean "
        "'bench:safety'?)", base="suites"),
    Bad("task-not-in-the-catalogue", 'task = "simsa_kosbi"', 'task = "simsa_kosbi_x"', "suites[2].tasks[0].task",
        'task = "simsa_kosbi_x"', "unknown benchmark task 'simsa_kosbi_x' (did you mean 'simsa_kosbi'",
        base="suites"),
    Bad("lm-eval-subtask-misspelt", 'task = "kmmlu"', 'task = "kmmlu_acounting"', "suites[0].tasks[0].task",
        'task = "kmmlu_acounting"', "(did you mean 'kmmlu_accounting'", base="suites"),
    Bad("infinite-task-weight", "weight = 2", "weight = inf", "suites[1].tasks[0].weight", "weight = inf",
        "finite number", base="suites"),
    Bad("task-weight-beyond-the-bound", "weight = 2", "weight = 1e7", "suites[1].tasks[0].weight", "weight = 1e7",
        "less than or equal to 1000000", base="suites"),
    Bad("nan-chance", "chance = 0.5", "chance = nan", "suites[2].tasks[0].chance", "chance = nan",
        "finite number", base="suites"),
    Bad("threshold-no-suite-score-reaches", "threshold = 0.5", "threshold = 50", "stages[0].gates[0].threshold",
        "threshold = 50", "threshold 50 is above every possible bench:safety score (range [0, 1])", base="suites"),
    Bad("suite-score-on-a-percent-range", MATH_POINTS, MATH_POINTS + "\n    raw_range = [0, 100]",
        "stages[0].criteria[0].children[0].raw_range", "raw_range = [0, 100]",
        "bench:math is a suite score on 0–1, but raw_range is [0.0, 100.0]", base="suites"),
    Bad("stage-without-criteria", '  [[stages.criteria]]\n  id = "final"\n  name = "Final review"\n  points = 10\n'
        '  source = "panel:user"\n', "", "stages[1].criteria", "[[stages]]", "required key is missing", nth=2),
]


def test_base_with_suites_is_valid_without_warnings() -> None:
    loaded = parse_program(BASE_SUITES, "base.toml")
    assert [s.id for s in loaded.program.suites] == ["math", "code", "safety"]
    assert loaded.warnings == ()


def test_at_least_sixteen_kinds_of_malformed_schema() -> None:
    assert len({b.kind for b in BAD}) == len(BAD) >= 16


@pytest.mark.parametrize("bad", BAD, ids=[b.kind for b in BAD])
def test_malformed_program_is_one_line_naming_file_line_and_key(bad: Bad, tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text(bad.text(), encoding="utf-8")
    message = load_error(path)
    prefix = bad.expected_prefix(str(path))
    assert message.startswith(prefix), f"{message!r} should start with {prefix!r}"
    assert bad.says in message


def test_non_utf8_bytes_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_bytes(BASE.replace('name = "Team Beta"', 'name = "Team B\xe9ta"').encode("latin-1"))
    offset = BASE.index("Team Beta") + len("Team B")
    assert load_error(path) == f"{path}:{line(BASE, BETA_NAME)}: not valid UTF-8 (byte 0xe9 at offset {offset})"


@pytest.mark.parametrize("content", ["", "\n\n   \n", "\ufeff"], ids=["empty", "blank-lines", "bom-only"])
def test_empty_file(content: str, tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text(content, encoding="utf-8")
    assert load_error(path) == f"{path}: file is empty"


def test_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert load_error(path) == f"{path}: file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert load_error(tmp_path) == f"{tmp_path}: is a directory, expected a .toml program file"


def test_path_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text(BASE, encoding="utf-8")
    assert load_error(path / "inner.toml") == f"{path / 'inner.toml'}: cannot read: Not a directory"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever the mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text(BASE, encoding="utf-8")
    path.chmod(0)
    try:
        assert load_error(path) == f"{path}: cannot read: Permission denied"
    finally:
        path.chmod(0o600)


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    padding = "# padding\n" * (MAX_PROGRAM_BYTES // 10 + 1)
    path.write_text(BASE + padding, encoding="utf-8")
    size = path.stat().st_size
    assert size > MAX_PROGRAM_BYTES
    assert load_error(path) == f"{path}: file is {size} bytes; program files are limited to {MAX_PROGRAM_BYTES} bytes"


def test_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    text = BASE + "#" * (MAX_PROGRAM_BYTES - len(BASE.encode("utf-8")) - 1) + "\n"
    path.write_text(text, encoding="utf-8")
    assert path.stat().st_size == MAX_PROGRAM_BYTES
    assert load_program(path).program.program.id == "mini"


def test_deeply_nested_toml_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text(BASE + "deep = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    assert load_error(path) == f"{path}: TOML syntax error: arrays or inline tables are nested too deeply"


def test_unterminated_array_points_at_the_last_line(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    text = BASE + 'extra = ["a",\n  "b",\n'
    path.write_text(text, encoding="utf-8")
    assert load_error(path).startswith(f"{path}:{len(BASE.splitlines()) + 2}: TOML syntax error: ")


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode("utf-8"))
    assert load_program(path).program.program.id == "mini"


def test_line_numbers_survive_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    text = mutate('name = "Team Alpha"', 'name = "Team\u2028Alpha\u2029\x85"').replace("points = 20", "points = 0")
    path = tmp_path / "program.toml"
    path.write_text(text, encoding="utf-8")
    where = f"{path}:{line(BASE, 'points = 20')}:"
    assert load_error(path).startswith(f"{where} stages[0].criteria[0].children[1].points: ")


def test_odd_keys_are_quoted_so_the_error_stays_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text(mutate("advance_best = 1", 'advance_best = 1\n  "two\\nlines" = 2'), encoding="utf-8")
    message = load_error(path)
    assert message.startswith(f'{path}:{line(BASE, "advance_best = 1") + 1}: stages[0].elimination."two\\nlines": '
                              "unknown key")


def test_errors_count_the_other_problems(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text(mutate("points = 20", "points = 0").replace('kind = "min_score"', 'kind = "vibes"'),
                    encoding="utf-8")
    assert load_error(path).endswith("(and 1 more problem)")


# --------------------------------------------------------------------------- warnings


def test_bench_sources_without_suites_are_warnings_at_their_lines() -> None:
    warnings = parse_program(BASE, "base.toml").warnings
    assert [(w.line, w.key) for w in warnings] == [
        (line(BASE, 'source = "bench:math"'), "stages[0].criteria[0].children[0].source"),
        (line(BASE, 'source = "bench:code"'), "stages[0].criteria[0].children[1].source"),
        (line(BASE, 'source = "bench:safety"'), "stages[0].gates[0].source"),
    ]
    assert str(warnings[0]) == (f"base.toml:{warnings[0].line}: "
                                "stages[0].criteria[0].children[0].source: source 'bench:math' names no suite (the "
                                "programme declares no [[suites]]), so its scores can only be imported (`simsa "
                                "score import`), not recorded from a benchmark run")


def test_unused_suite_and_unreachable_gate_failure_are_warnings() -> None:
    text = mutate("threshold = 0.5", "threshold = -1", BASE_SUITES) + (
        '\n[[suites]]\nid = "spare"\nname = "Spare"\n\n  [[suites.tasks]]\n  task = "hrm8k"\n')
    warnings = parse_program(text, "p.toml").warnings
    assert [(w.line, w.key, w.message) for w in warnings] == [
        (line(text, 'id = "spare"'), "suites[3].id", "suite 'spare' feeds no criterion or gate (no source "
                                                     "'bench:spare')"),
        (line(text, "threshold = -1"), "stages[0].gates[0].threshold",
         "threshold -1 is below every possible bench:safety score (range [0, 1]), so gate 'safety' never fails"),
    ]


def test_a_pinned_decision_file_that_is_not_there_is_a_warning(tmp_path: Path) -> None:
    text = mutate(S2_END, S2_END + "\n" + PREVIOUS, BASE_SUITES)
    path = tmp_path / "program.toml"
    path.write_text(text, encoding="utf-8")
    at = line(text, 'file = "s1.json"')
    assert [str(w) for w in load_program(path).warnings] == [
        f"{path}:{at}: stages[1].previous_decision.file: s1.json is not beside the program file; `simsa stage "
        "import-decision` needs it unless the import is already recorded"]
    assert parse_program(text, "stored").warnings == ()  # a program read from the store has no directory


# --------------------------------------------------------------------------- files that are not program files


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "program.toml"
    os.mkfifo(fifo)
    assert load_error(fifo) == f"{fifo}: is a FIFO (named pipe), not a regular file"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_device_is_refused_before_reading() -> None:
    assert load_error("/dev/zero") == "/dev/zero: is a character device, not a regular file"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs procfs")
def test_read_stops_past_the_limit_whatever_stat_says() -> None:
    status = Path("/proc/self/status")
    assert status.stat().st_size == 0 and len(status.read_bytes()) > 64  # stat says empty; the content is not
    with pytest.raises(FileReadError, match=r"^file is over 64 bytes; status files are limited to 64 bytes$"):
        read_limited(status, 64, "status files")
    assert read_limited(status, 1_000_000).startswith(b"Name:")


# --------------------------------------------------------------------------- the task catalogue without lm-eval


def test_task_names_match_the_bench_catalogue() -> None:
    from simsa.bench import catalog

    assert set(tasknames.SIMSA_TASKS) == set(catalog._OURS)
    assert tuple(s.name for s in catalog._STOCK) == tasknames.CURATED_LM_EVAL_TASKS


def test_task_check_imports_neither_lm_eval_nor_torch(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text(BASE_SUITES, encoding="utf-8")
    code = ("import sys; from simsa.program.loader import load_program; "
            f"load_program({str(path)!r}); "
            "print(sorted(m for m in ('lm_eval', 'torch', 'datasets', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_cli_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_task_extract_is_the_pinned_lm_eval_index() -> None:
    lm_eval_tasks = pytest.importorskip("lm_eval.tasks")
    from importlib.metadata import version

    if version("lm_eval") != tasknames.LM_EVAL_VERSION:
        pytest.skip(f"lm-eval {version('lm_eval')} installed; the extract is of {tasknames.LM_EVAL_VERSION}")
    assert tasknames.lm_eval_tasks() == frozenset(lm_eval_tasks.TaskManager().task_index)


# --------------------------------------------------------------------------- the shipped example


def test_shipped_examples_are_valid_and_identical() -> None:
    loaded = load_program(EXAMPLE)
    assert loaded.program.program.id == "k-ai-2026"
    with as_file(files("simsa.examples") / "k-ai-2026.toml") as packaged:
        assert load_program(packaged).sha256 == loaded.sha256


# --------------------------------------------------------------------------- the real CLI, in subprocesses

SAFETY_SOURCE_LINE = line(BASE_SUITES, 'source = "bench:safety"')
KOSBI_TASK_LINE = line(BASE_SUITES, 'task = "simsa_kosbi"')
FIFO, DEV_ZERO = "<fifo>", "<dev-zero>"  # not file contents: a named pipe and the endless device
CLI_CASES: dict[str, str | bytes | None] = {
    "fifo": FIFO,
    "dev-zero": DEV_ZERO,
    "points-1e308": mutate("points = 20", "points = 1e308"),
    "weight-inf": mutate("weight = 2", "weight = inf", BASE_SUITES),
    "bench-source-misspelt": mutate('source = "bench:safety"', 'source = "bench:safty"', BASE_SUITES),
    "task-not-in-the-catalogue": mutate('task = "simsa_kosbi"', 'task = "simsa_kosbi_x"', BASE_SUITES),
    "toml-syntax-error": mutate('name = "Maths"', 'name = "Maths'),
    "non-utf8": BASE.replace('name = "Team Beta"', 'name = "Team B\xe9ta"').encode("latin-1"),
    "empty": "",
    "not-found": None,
    "unknown-key-typo": mutate(MATH_POINTS, MATH_POINTS.replace("points", "pionts")),
    "children-do-not-sum-to-parent": mutate(MATH_POINTS, MATH_POINTS.replace("40", "35")),
}

CLI_EXPECTED_PREFIX = {
    "fifo": lambda p: f"{p}: is a FIFO (named pipe), not a regular file",
    "dev-zero": lambda p: "/dev/zero: is a character device, not a regular file",
    "points-1e308": lambda p: f"{p}:{line(BASE, 'points = 20')}: stages[0].criteria[0].children[1].points: Input "
                              "should be less than or equal to 1000000 (got 1e+308)",
    "weight-inf": lambda p: f"{p}:{line(BASE_SUITES, 'weight = 2')}: suites[1].tasks[0].weight: Input should be a "
                            "finite number",
    "bench-source-misspelt": lambda p: f"{p}:{SAFETY_SOURCE_LINE}: stages[0].gates[0].source: source 'bench:safty' "
                                       "names no suite",
    "task-not-in-the-catalogue": lambda p: f"{p}:{KOSBI_TASK_LINE}: suites[2].tasks[0].task: unknown benchmark task "
                                           "'simsa_kosbi_x'",
    "toml-syntax-error": lambda p: f"{p}:{line(BASE, MATHS_NAME)}: TOML syntax error: ",
    "non-utf8": lambda p: f"{p}:{line(BASE, BETA_NAME)}: not valid UTF-8 ",
    "empty": lambda p: f"{p}: file is empty",
    "not-found": lambda p: f"{p}: file not found",
    "unknown-key-typo": lambda p: f"{p}:{line(BASE, 'points = 40')}: stages[0].criteria[0].children[0].pionts: ",
    "children-do-not-sum-to-parent": lambda p: f"{p}:{line(BASE, 'points = 60')}: stages[0].criteria[0].points: ",
}


@dataclass(frozen=True)
class Run:
    path: str
    cwd: Path
    returncode: int
    stdout: str
    stderr: str


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMSA_", "FORCE_COLOR", "CLICOLOR"))}
    env.update(NO_COLOR="1", COLUMNS="400", TERM="dumb", PYTHONIOENCODING="utf-8", OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Run every CLI case at once (each start of the CLI takes a second or so) in its own empty directory."""
    jobs: dict[str, tuple[str, Path, subprocess.Popen[str]]] = {}
    commands: dict[str, tuple[str, list[str]]] = {"example-json": (str(EXAMPLE), [str(EXAMPLE), "--json"])}
    for kind, content in CLI_CASES.items():
        path = tmp_path_factory.mktemp("files") / f"{kind}.toml"
        if content == FIFO:
            os.mkfifo(path)
        elif content == DEV_ZERO:
            path = Path("/dev/zero")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content, encoding="utf-8")
        commands[kind] = (str(path), [str(path)])
    for kind, (path, args) in commands.items():
        cwd = tmp_path_factory.mktemp(f"cwd-{kind}")
        proc = subprocess.Popen([sys.executable, "-m", "simsa.cli.main", "program", "check", *args], cwd=cwd,
                                env=_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                encoding="utf-8")
        jobs[kind] = (path, cwd, proc)
    runs = {}
    for kind, (path, cwd, proc) in jobs.items():
        out, err = proc.communicate(timeout=120)
        runs[kind] = Run(path, cwd, proc.returncode, ANSI.sub("", out), ANSI.sub("", err))
    return runs


def test_cli_check_json_on_the_example(cli_runs: dict[str, Run]) -> None:
    run = cli_runs["example-json"]
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["valid"] is True
    assert doc["program"] == "k-ai-2026"
    assert [s["id"] for s in doc["stages"]] == ["stage-1", "stage-2"]
    assert doc["sha256"] == load_program(EXAMPLE).sha256
    assert doc["warnings"] == []  # stage 2's benchmark sources name imported suites
    assert [s["id"] for s in doc["suites"]] == ["nia", "global-common", "team-chosen", "stage2", "safety"]
    assert run.stderr == ""
    assert not (run.cwd / "simsa.db").exists()
    assert list(run.cwd.iterdir()) == []


@pytest.mark.parametrize("kind", list(CLI_CASES))
def test_cli_check_rejects_malformed_file_with_one_line(kind: str, cli_runs: dict[str, Run]) -> None:
    run = cli_runs[kind]
    assert run.returncode == 2
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0] == f"error: {load_error(run.path)}"
    assert lines[0].startswith("error: " + CLI_EXPECTED_PREFIX[kind](run.path))
    assert list(run.cwd.iterdir()) == []


# --------------------------------------------------------------------------- the CLI, in-process


def _run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["simsa", *args])
    for name in ("SIMSA_DATABASE_URL", "SIMSA_ACTOR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as done:
        main()
    return int(done.value.code or 0)


def test_cli_check_accepts_the_example_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert _run_main(monkeypatch, "program", "check", str(EXAMPLE)) == 0
    out, err = capsys.readouterr()
    assert ANSI.sub("", err) == ""  # no warnings: every bench source names a suite
    assert "valid:" in out and "(k-ai-2026)" in out and "stage-2" in out
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_error_and_the_loader_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "program.toml"
    path.write_text(mutate('id = "beta"', 'id = "alpha"'), encoding="utf-8")
    message = load_error(path)
    monkeypatch.chdir(tmp_path)
    assert _run_main(monkeypatch, "program", "check", str(path)) == 2
    out, err = capsys.readouterr()
    assert (out, ANSI.sub("", err)) == ("", f"error: {message}\n")
    assert message == f"{path}:{line(BASE, BETA_ID)}: teams[1].id: team id 'alpha' is used twice"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["program.toml"]


def test_cli_json_error_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "program.toml"
    path.write_text(mutate("total_points = 100", "total_points = 90"), encoding="utf-8")
    assert _run_main(monkeypatch, "program", "check", str(path), "--json") == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": load_error(path), "exit_code": 2}
    assert ANSI.sub("", err) == f"error: {load_error(path)}\n"


@pytest.mark.parametrize("value", ["[/x]", "[bold]x"])
def test_cli_prints_brackets_in_values_verbatim(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "program.toml"
    path.write_text(mutate('id = "alpha"', f'id = "{value}"'), encoding="utf-8")
    message = load_error(path)
    assert _run_main(monkeypatch, "program", "check", str(path)) == 2
    assert ANSI.sub("", capsys.readouterr().err) == f"error: {message}\n"


# --------------------------------------------------------------------------- the line locator

LOCATE_DOC = """\
[program]
id = "p"

[[stages]]  # first stage
id = "one"

  [stages.elimination]
  advance_best = 2

  [[stages.criteria]]
  id = "a"

    [[stages.criteria.children]]
    id = "a1"
    note = \"\"\"
[[stages]]
fake = 1
\"\"\"

    [[stages.criteria.children]]
    id = "a2"

  [[stages.criteria]]
  id = "b"

[[ stages ]]
id = "two"
"quoted.key" = 1
'single'.bare = 2

  [[stages.criteria]]
  id = "c"

    [[stages.criteria.children]]
    id = "c1"

  [stages.elimination]
  cut_lowest = 1
"""


def test_index_lines_on_nested_arrays_of_tables() -> None:
    pos = index_lines(LOCATE_DOC)
    expected = {
        ("program",): 1,
        ("program", "id"): 2,
        ("stages",): 4,
        ("stages", 0): 4,
        ("stages", 0, "id"): 5,
        ("stages", 0, "elimination"): 7,
        ("stages", 0, "elimination", "advance_best"): 8,
        ("stages", 0, "criteria"): 10,
        ("stages", 0, "criteria", 0): 10,
        ("stages", 0, "criteria", 0, "id"): 11,
        ("stages", 0, "criteria", 0, "children", 0): 13,
        ("stages", 0, "criteria", 0, "children", 0, "id"): 14,
        ("stages", 0, "criteria", 0, "children", 0, "note"): 15,
        ("stages", 0, "criteria", 0, "children", 1): 20,
        ("stages", 0, "criteria", 0, "children", 1, "id"): 21,
        ("stages", 0, "criteria", 1): 23,
        ("stages", 0, "criteria", 1, "id"): 24,
        ("stages", 1): 26,
        ("stages", 1, "id"): 27,
        ("stages", 1, "quoted.key"): 28,
        ("stages", 1, "single", "bare"): 29,
        ("stages", 1, "criteria", 0): 31,
        ("stages", 1, "criteria", 0, "children", 0): 34,
        ("stages", 1, "criteria", 0, "children", 0, "id"): 35,
        ("stages", 1, "elimination"): 37,
        ("stages", 1, "elimination", "cut_lowest"): 38,
    }
    assert {path: pos.get(path) for path in expected} == expected
    assert ("stages", 0, "fake") not in pos and ("stages", 2) not in pos


def test_line_of_falls_back_to_the_nearest_table() -> None:
    pos = index_lines(LOCATE_DOC)
    assert line_of(pos, ("stages", 1, "criteria", 0, "children", 0, "points")) == 34
    assert line_of(pos, ("stages", 0, "criteria", 1, "raw_range", 0)) == 23
    assert line_of(pos, ("stages", 1, "elimination", "cut_lowest")) == 38
    assert line_of(pos, ("stages", 1, "robustness", "draws")) == 26
    assert line_of(pos, ("teams", 0, "id")) is None
    assert line_of(pos, ()) is None


def test_index_lines_counts_lines_as_toml_does() -> None:
    text = 'a = "x\u2028y\x85z"\r\nb = 1\r\n[t]\r\nc = 2\r\n'
    assert index_lines(text) == {("a",): 1, ("b",): 2, ("t",): 3, ("t", "c"): 4}


def test_dotted_renders_indices_and_quotes_odd_keys() -> None:
    assert dotted(("stages", 0, "criteria", 1, "children", 2, "points")) == "stages[0].criteria[1].children[2].points"
    assert dotted(("stages", 0, "two\nlines")) == 'stages[0]."two\\nlines"'
    assert dotted(("a b", "ok_key-1")) == '"a b".ok_key-1'
    assert dotted(()) == ""


# --------------------------------------------------------------------------- bench sources in a programme with suites


@pytest.mark.parametrize(("source", "expected"), [
    ("bench:ko-safty", "source 'bench:ko-safty' names no suite (suites: nia, global-common, team-chosen, stage2, "
                       "safety) (did you mean 'bench:safety'?)"),
    ("bench:zzz", "declare [[suites]] id = 'zzz' (imported = true if its scores come from `simsa score import`)"),
])
def test_a_bench_source_without_its_suite_is_an_error_when_suites_are_declared(source: str, expected: str) -> None:
    """The reported case: `bench:ko-safty` in a programme with suites printed "✓ valid"."""
    text = EXAMPLE.read_text(encoding="utf-8").replace('source = "bench:safety"', f'source = "{source}"')
    with pytest.raises(ProgramFileError) as info:
        parse_program(text, "k.toml")
    assert info.value.key == "stages[1].gates[1].source" and expected in info.value.message


def test_imported_suites_take_no_tasks_and_are_not_run() -> None:
    from simsa.bench.suites import runnable_suite
    from simsa.errors import InputError

    loaded = parse_program(EXAMPLE.read_text(encoding="utf-8"), "k.toml")
    assert loaded.program.suite("safety").imported and not loaded.program.suite("safety").tasks
    with pytest.raises(InputError, match="suite 'safety' is imported"):
        runnable_suite(loaded.program, "safety")
    with_task = EXAMPLE.read_text(encoding="utf-8").replace(
        'name_ko = "안전성 벤치마크 (외부 산출)"\nimported = true',
        'name_ko = "안전성 벤치마크 (외부 산출)"\nimported = true\n\n  [[suites.tasks]]\n  task = "simsa_kosbi"')
    with pytest.raises(ProgramFileError, match=r"is imported .* so it lists no tasks"):
        parse_program(with_task, "k.toml")
    without = EXAMPLE.read_text(encoding="utf-8").replace('name_ko = "안전성 벤치마크 (외부 산출)"\nimported = true',
                                                          'name_ko = "안전성 벤치마크 (외부 산출)"')
    with pytest.raises(ProgramFileError, match="lists no tasks; add"):
        parse_program(without, "k.toml")
