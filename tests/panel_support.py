"""The example programme with an expert panel whose submission deadline the test controls, and the steps that set
a panel up as the secretariat would (experts declared and assigned, documents uploaded)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from helpers import EXAMPLE

DEADLINE_LINE = "submission_deadline = 2026-01-05T18:00:00+09:00"
STAGE = "stage-1"
PROGRAM = "k-ai-2026"


def panel_program_text(deadline: dt.datetime, *, changes: dict[str, str] | None = None) -> str:
    """The example programme's text with stage 1's submission deadline at `deadline` (and other lines replaced)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert DEADLINE_LINE in text
    stamp = deadline.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = text.replace(DEADLINE_LINE, f"submission_deadline = {stamp}")
    for old, new in (changes or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def write_panel_program(folder: Path, deadline: dt.datetime, *, changes: dict[str, str] | None = None) -> Path:
    path = folder / "k-ai-2026.toml"
    path.write_text(panel_program_text(deadline, changes=changes), encoding="utf-8")
    return path


def markdown_report(team_name: str, member: str) -> bytes:
    return (f"# Technical report of {team_name}\n\nBuilt by {member}. We trained a 7B model from scratch on 2T "
            "tokens.\n\n| stage | tokens |\n|---|---|\n| pre-training | 2T |\n").encode()


def csv_log(steps: int = 200, *, first_loss: float = 10.4) -> bytes:
    out = io.StringIO()
    out.write("step,tokens,loss,lr\n")
    for s in range(1, steps + 1):
        lr = 3e-4 * min(1.0, s / 20)
        loss = 2.0 + (first_loss - 2.0) * (0.97 ** s)
        out.write(f"{s},{s * 4_194_304},{loss:.5f},{lr:.3e}\n")
    return out.getvalue().encode()
