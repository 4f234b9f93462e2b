"""`simsa audit …`: verify the hash chain and the database against it; export the log for publication."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from simsa.audit import log as audit_log
from simsa.audit.chain import verify_chain
from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json
from simsa.errors import CheckFailed, InputError

app = typer.Typer(help="Verify and export the hash-chained audit log.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.command("verify")
def verify(
    expect_head: Annotated[str | None, typer.Option(help="Published head hash the log must end at.")] = None,
    exported: Annotated[str | None, typer.Option("--file", help="Verify an exported log file instead of the "
                                                                 "database (chain only).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fail (exit 1, naming the entry or row) if any entry was edited, deleted or reordered, or if the database's
    scores, gate results, decisions or appeals differ from what the log recorded."""
    if exported:
        try:
            doc = json.loads(Path(exported).read_text(encoding="utf-8"))
            entries = audit_log.entries_from_export(doc)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{exported}: not a simsa audit export ({exc})") from None
        problems = verify_chain(entries, expect_head or doc.get("head"))
        result = {"ok": not problems, "entries": len(entries), "head": entries[-1].hash if entries else None,
                  "problems": [p.to_dict() for p in problems]}
    else:
        with STATE.store().session() as session:
            result = audit_log.verify(session, expect_head).to_dict()
    if as_json:
        emit_json(result)
    if not result["ok"]:
        first = result["problems"][0]
        more = f" (and {len(result['problems']) - 1} more problems)" if len(result["problems"]) > 1 else ""
        if not as_json:
            for p in result["problems"]:
                console.print(f"[red]✗[/] {escape(p['message'])}", highlight=False)
        raise CheckFailed(f"audit verification failed: {first['message']}{more}")
    if not as_json:
        console.print(f"[green]✓[/] audit log intact: {result['entries']} entries, head {result['head']}; "
                      + ("database matches the log" if not exported else "exported chain verified"))


@app.command("export")
def export(
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write to this file (default stdout).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the whole log (entries with payloads and hashes, and the head) as JSON for publication."""
    with STATE.store().session() as session:
        doc = audit_log.export(session)
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
        if as_json:
            emit_json({"written": output, "entries": len(doc["entries"]), "head": doc["head"]})
        else:
            console.print(f"[green]✓[/] wrote {len(doc['entries'])} entries to {output} (head {doc['head']})")
    else:
        print(text)
