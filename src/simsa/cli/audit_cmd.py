"""`simsa audit …`: verify the hash chain and the database against it; export the log for publication; sign
checkpoints that anchor it outside the database; show it as a readable trail."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json
from simsa.errors import CheckFailed, InputError

if TYPE_CHECKING:  # the cryptography package loads only for the commands that sign or check
    from simsa.audit.chain import Entry
    from simsa.audit.checkpoint import Checkpoint, CheckpointCheck
    from simsa.audit.keys import PublicKey

app = typer.Typer(help="Verify, export, checkpoint and read the hash-chained audit log.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
KeyOpt = Annotated[str | None, typer.Option("--key", envvar="SIMSA_AUDIT_KEY",
                                            help="Private signing key file (PEM; default $SIMSA_AUDIT_KEY).")]
EXPORT_FILE_LIMIT = 256 * 1024 * 1024


@app.command("verify")
def verify(
    expect_head: Annotated[str | None, typer.Option(help="Published head hash the log must end at.")] = None,
    exported: Annotated[str | None, typer.Option("--file", help="Verify an exported log file instead of the "
                                                                 "database (chain only).")] = None,
    checkpoints: Annotated[list[str] | None, typer.Option(
        "--checkpoint", help="A published signed checkpoint the log must extend (repeatable).")] = None,
    trusted_keys: Annotated[list[str] | None, typer.Option(
        "--trusted-key", help="Public key (file, base64 or hex) or fingerprint (sha256:…) that must have signed "
                              "the checkpoints (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the chain, the database against it and, with --checkpoint, published signed checkpoints.

    Fails (exit 1, naming the entry or row) if any entry was edited, deleted or reordered, or if the database's
    scores, gate results, decisions or appeals differ from what the log recorded; with --checkpoint, also if the
    log does not extend a published checkpoint (history re-written, even as a valid chain, or truncated).
    """
    from simsa.audit import log as audit_log
    from simsa.audit.chain import verify_chain

    signed = _read_checkpoints(checkpoints or [])
    pins = _read_pins(trusted_keys or [])
    if pins and not signed:
        raise InputError("--trusted-key needs --checkpoint: it names the key that must have signed the checkpoints")
    if exported:
        doc = _read_export(exported)
        try:
            entries = audit_log.entries_from_export(doc)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{exported}: not a simsa audit export ({exc})") from None
        problems = verify_chain(entries, expect_head or doc.get("head"))
        result: dict[str, Any] = {"ok": not problems, "entries": len(entries),
                                  "head": entries[-1].hash if entries else None,
                                  "sealed": sum(1 for e in entries if e.sealed is not None),
                                  "problems": [p.to_dict() for p in problems]}
    else:
        with STATE.store().session(readonly=True) as session:
            result = audit_log.verify(session, expect_head).to_dict()
            entries = audit_log.load_entries(session) if signed else []
    checks = _check_checkpoints(signed, entries, pins)
    if signed:
        result["checkpoints"] = [c.to_dict() for c in checks]
        result["problems"] += [p.to_dict() for c in checks for p in c.problems]
        result["ok"] = not result["problems"]
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
                      + ("database matches the log" if not exported else "exported chain verified")
                      + (f"; {result['sealed']} sealed entries (an expert panel before its decision) checked for "
                         "their links only" if result.get("sealed") else ""))
        for c in checks:
            trust = ("a trusted key" if c.pinned else
                     "not pinned: compare it with the published fingerprint, or pass --trusted-key")
            console.print(f"[green]✓[/] extends checkpoint {escape(c.source)} ({c.size} entries, head "
                          f"{c.head[:16]}…, {c.time}), signed by key {c.key_fingerprint} ({trust})",
                          highlight=False, soft_wrap=True)


def _read_export(path: str) -> dict:
    from simsa.audit.files import read_capped

    data = read_capped(path, EXPORT_FILE_LIMIT, "simsa audit export")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a simsa audit export ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: not a simsa audit export (not a JSON object)")
    return doc


def _read_checkpoints(paths: list[str]) -> list[tuple[str, Checkpoint]]:
    if not paths:
        return []
    from simsa.audit.checkpoint import read_checkpoint

    return [(p, read_checkpoint(p)) for p in paths]


def _read_pins(values: list[str]) -> set[str]:
    if not values:
        return set()
    from simsa.audit.keys import read_pin

    return {read_pin(v) for v in values}


def _check_checkpoints(signed: list[tuple[str, Checkpoint]], entries: list[Entry],
                       pins: set[str]) -> list[CheckpointCheck]:
    if not signed:
        return []
    from simsa.audit.checkpoint import check_checkpoint

    return [check_checkpoint(cp, entries, source, pins) for source, cp in signed]


@app.command("export")
def export(
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write to this file (default stdout).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the whole log (entries with payloads and hashes, and the head) as JSON for publication."""
    from simsa.audit import log as audit_log

    with STATE.store().session(readonly=True) as session:
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


@app.command("keygen")
def keygen(
    output: Annotated[str, typer.Option("-o", "--output", help="Private key file to create (PEM, mode 0600).")],
    public_out: Annotated[str | None, typer.Option("--public-out", help="Also write the public key (PEM) here, "
                                                                        "for verifiers to pin.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an Ed25519 key for signing checkpoints (never overwrites a file).

    Keep it off the database host: whoever holds both the key and the database can re-write history and sign it.
    """
    from simsa.audit.keys import generate_key, public_key_of, write_private_key, write_public_key

    if public_out is not None:
        if Path(public_out).resolve() == Path(output).resolve():
            raise InputError("--public-out must be a different file from the private key")
        if Path(public_out).exists():
            raise InputError(f"{public_out} already exists; refusing to overwrite a public key file")
    key = generate_key()
    public = public_key_of(key)
    write_private_key(output, key)
    if public_out is not None:
        write_public_key(public_out, public)
    if as_json:
        emit_json({"written": output, "public_written": public_out, **public.to_dict()})
        return
    console.print(f"[green]✓[/] wrote private key {escape(output)} (mode 0600); keep it off the database host",
                  highlight=False, soft_wrap=True)
    if public_out is not None:
        console.print(f"[green]✓[/] wrote public key {escape(public_out)}", highlight=False, soft_wrap=True)
    _print_public(public)


@app.command("pubkey")
def pubkey(
    key: KeyOpt = None,
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write the public key (PEM) to this new "
                                                                      "file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the public half of the signing key (and its fingerprint) for publication and pinning."""
    from simsa.audit.keys import load_private_key, public_key_of, write_public_key

    public = public_key_of(load_private_key(_key_path(key)))
    if output is not None:
        write_public_key(output, public)
    if as_json:
        emit_json({"written": output, **public.to_dict()})
        return
    if output is not None:
        console.print(f"[green]✓[/] wrote public key {escape(output)}", highlight=False, soft_wrap=True)
    _print_public(public)


@app.command("checkpoint")
def checkpoint(
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write the checkpoint to this new file "
                                                                      "(default stdout).")] = None,
    key: KeyOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify the log, then sign its head for publication outside the database.

    The checkpoint holds the size, the head hash, the RFC 9162 Merkle root and the time. Writes nothing to the
    database. Later, `audit verify --checkpoint` fails if history up to this point was re-written or cut.
    """
    import datetime as dt

    from simsa.audit import log as audit_log
    from simsa.audit.checkpoint import make_checkpoint
    from simsa.audit.files import write_new
    from simsa.audit.keys import load_private_key

    private = load_private_key(_key_path(key))
    if output is not None and not force and Path(output).exists():
        raise InputError(f"{output} already exists; refusing to overwrite a checkpoint (--force replaces it)")
    with STATE.store().session(readonly=True) as session:
        verification = audit_log.verify(session)
        entries = audit_log.load_entries(session)
    if not verification.ok:
        first = verification.problems[0].message
        more = f" (and {len(verification.problems) - 1} more problems)" if len(verification.problems) > 1 else ""
        raise CheckFailed(f"refusing to sign a log that does not verify: {first}{more}")
    cp = make_checkpoint(entries, private, dt.datetime.now(dt.UTC))
    if output is None:
        sys.stdout.write(cp.to_json())
        return
    write_new(output, cp.to_json().encode("utf-8"), 0o644, "checkpoint", overwrite=force)
    if as_json:
        emit_json({"written": output, "key_fingerprint": cp.key_fingerprint, **cp.to_dict()})
    else:
        console.print(f"[green]✓[/] checkpoint of {cp.size} entries (head {cp.head}) signed by key "
                      f"{cp.key_fingerprint} at {cp.time}, written to {escape(output)}; publish it",
                      highlight=False, soft_wrap=True)


@app.command("log")
def trail(
    since: Annotated[str | None, typer.Option(help="From this date or date-time (ISO 8601; offsets converted "
                                                   "to UTC; a bare date is midnight UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this date or date-time (exclusive).")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only entries by this actor.")] = None,
    action: Annotated[str | None, typer.Option(help="Only actions starting with this, e.g. score or "
                                                    "decision.record.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the newest N matching entries (still oldest first).")
                     ] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="Show times in this IANA zone (default UTC).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The log as a readable trail, oldest first.

    One line per entry: seq, time, actor, action, entity and a summary of what was written (score, gate result,
    decision, appeal…).
    """
    from simsa.audit import log as audit_log
    from simsa.audit.trail import TrailFilter, build_trail, parse_instant, zone

    flt = TrailFilter(since=parse_instant(since, "--since") if since is not None else None,
                      until=parse_instant(until, "--until") if until is not None else None,
                      actor=actor, action=action, limit=limit)
    shown_in = zone(tz) if tz is not None else None
    with STATE.store().session(readonly=True) as session:
        entries = audit_log.load_entries(session)
    result = build_trail(entries, flt, shown_in)
    if as_json:
        emit_json(result.to_dict())
        return
    if not result.items:
        console.print(f"no entries match (the log has {result.total})", highlight=False, soft_wrap=True)
        return
    seq_w = max(len(str(i.seq)) for i in result.items)
    actor_w = max(len(i.actor) for i in result.items)
    action_w = max(len(i.action) for i in result.items)
    for i in result.items:
        what = f"{i.entity}#{i.entity_id}" if i.entity_id is not None else i.entity
        console.print(f"{i.seq:>{seq_w}}  {i.time}  {i.actor:<{actor_w}}  {i.action:<{action_w}}  {what}  "
                      f"{i.summary}", markup=False, highlight=False, emoji=False, soft_wrap=True)
    if result.matched > len(result.items):
        console.print(f"(the newest {len(result.items)} of {result.matched} matching entries)", highlight=False,
                      soft_wrap=True)


def _key_path(key: str | None) -> str:
    if not key:
        raise InputError("no signing key: pass --key FILE or set SIMSA_AUDIT_KEY to the key file "
                         "(make one with `simsa audit keygen -o FILE`)")
    return key


def _print_public(public: PublicKey) -> None:
    console.print(f"public key (base64): {public.base64}", highlight=False, soft_wrap=True)
    console.print(f"fingerprint:         {public.fingerprint}", highlight=False, soft_wrap=True)
