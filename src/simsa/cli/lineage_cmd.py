"""`simsa lineage inspect|compare`: what a checkpoint holds, and whether one model descends from another."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from simsa.cli.output import console, emit_json, emit_units_json, err_console, fail_if_units_failed

if TYPE_CHECKING:
    from simsa.lineage.model.roles import MappedTensor
    from simsa.lineage.stats.correspondence import SamplingSettings

app = typer.Typer(help="Weight lineage: inspect checkpoints and test whether a model descends from another.",
                  no_args_is_help=True)


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A Rich progress display on stderr; the callback takes (label, done, total), one bar per label's first word.

    Drawn on terminals only: in a log file a progress display is noise (even a transient one leaves a blank line).
    """
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err_console, transient=True,
                  disable=not err_console.is_terminal) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(label: str, done: int, total: int) -> None:
            key = label.split(" ", 1)[0]
            if key not in tasks:
                tasks[key] = bar.add_task(label, total=total)
            bar.update(tasks[key], completed=done, total=total, description=escape(label))

        yield progress


def _settings(units: int, ref_units: int, coords: int, draws: int, seed: int) -> SamplingSettings:
    from simsa.errors import InputError
    from simsa.lineage.stats.correspondence import SamplingSettings

    if min(units, ref_units, coords) < 1 or draws < 2:
        raise InputError("--units, --ref-units and --coords must be positive and --draws at least 2")
    return SamplingSettings(units=units, ref_units=ref_units, coords=coords, draws=draws, seed=seed)


@app.command("inspect")
def inspect(
    model: Annotated[str, typer.Argument(help="Model directory (Hugging Face layout) or .safetensors file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (always with the per-tensor map).")] = False,
    tensors: Annotated[bool, typer.Option("--tensors", help="Also list every tensor with its role.")] = False,
) -> None:
    """Show how tensors map to roles, parameters per component, and what stayed unmapped."""
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.model.adapters import describe

    side = open_side(model)
    try:
        info = describe(side.amap)
        info["path"] = model
        info["parameters"] = int(side.ckpt.total_parameters())
        info["tokenizer_files"] = sorted(side.ckpt.tokenizer_files)
        info["tensors"] = [_tensor_row(t) for t in side.amap.tensors]
    finally:
        side.ckpt.close()
    if as_json:
        emit_json(info)
        return
    console.print(f"[bold]{escape(model)}[/] — {escape(str(info.get('model_type')))} "
                  f"(adapter {escape(str(info.get('adapter')))}), {info['parameters']:,} parameters")
    for name, stack in (info.get("stacks") or {}).items():
        console.print(f"  stack {escape(name)}: hidden size {stack['hidden_size']}, {stack['num_layers']} layers")
    table = Table("component", "tensors", "parameters", title="Components")
    for name, comp in sorted((info.get("components") or {}).items()):
        table.add_row(escape(name), str(comp.get("tensors", "")), f"{comp.get('parameters', 0):,}")
    console.print(table)
    if tensors:
        listing = Table("tensor", "stack", "layer", "kind", "expert", "detail", "units (axis)", title="Tensor roles")
        for row in info["tensors"]:
            units = "—" if row["residual_axis"] is None else f"{row['units']} ({row['residual_axis']})"
            listing.add_row(escape(row["name"]), row["stack"], _s(row["layer"]), row["kind"], _s(row["expert"]),
                            escape(row["detail"]), units)
        console.print(listing)
    unmapped = info.get("unmapped") or []
    console.print(f"Unmapped tensors: {len(unmapped)}" + (": " + escape(", ".join(unmapped[:20])) if unmapped else ""))
    for note in info.get("notes") or []:
        console.print(f"  note: {escape(note)}")


def _s(value: object) -> str:
    return "—" if value is None else str(value)


def _tensor_row(t: MappedTensor) -> dict:
    """One mapped tensor (or slice of a fused tensor) as JSON."""
    return {"name": t.name, "stack": t.role.stack, "layer": t.role.layer, "kind": t.role.kind,
            "expert": t.role.expert, "detail": t.role.detail, "shape": list(t.shape),
            "residual_axis": t.residual_axis, "unit_range": list(t.unit_range) if t.unit_range else None,
            "units": t.n_units}


# The sampling and verdict options of a compare, shared by `compare` and `compare-many`.
CandUnits = Annotated[int, typer.Option("--units", help="Candidate hidden units sampled per unit group.")]
RefUnits = Annotated[int, typer.Option("--ref-units", help="Reference hidden units kept per unit group.")]
Coords = Annotated[int, typer.Option("--coords", help="Residual coordinates used.")]
Draws = Annotated[int, typer.Option("--draws", help="Coordinate permutations drawn for the null.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for all sampling (results are reproducible per seed).")]
DerivedAt = Annotated[float, typer.Option("--derived-threshold", help="Derived when -log10 p is at least this.")]
IndependentBelow = Annotated[float, typer.Option("--independent-threshold",
                                                 help="Independent when -log10 p is below this.")]


@app.command("compare")
def compare(
    candidate: Annotated[str, typer.Argument(help="Candidate model directory or .safetensors file.")],
    reference: Annotated[str, typer.Argument(help="Reference model directory or .safetensors file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (documented schema).")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="Also write an HTML report to this file.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write the JSON result here.")] = None,
    units: CandUnits = 256,
    ref_units: RefUnits = 8192,
    coords: Coords = 512,
    draws: Draws = 24,
    seed: Seed = 0,
    derived_threshold: DerivedAt = 6.0,
    independent_threshold: IndependentBelow = 2.0,
    views: Annotated[str, typer.Option(help="Unit views compared: all, input (rows that read the residual "
                                            "stream: contiguous, cheap remotely), or auto (input when the "
                                            "candidate is remote).")] = "auto",
) -> None:
    """Test whether CANDIDATE was initialised from REFERENCE's weights, where, and how strongly.

    CANDIDATE and REFERENCE are model directories, .safetensors or .gguf files, hub references org/name[@rev]
    (read by HTTP range requests), and REFERENCE may be a .simsa-fp fingerprint.

    Exit code 0 whatever the verdict; 2 for unreadable or refused checkpoints.
    """
    from dataclasses import replace

    from simsa.errors import InputError
    from simsa.lineage.compare.result import compare as run_compare
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.stats.verdict import Thresholds

    if views not in ("auto", "all", "input"):
        raise InputError("--views must be auto, all or input")
    settings = _settings(units, ref_units, coords, draws, seed)
    thresholds = Thresholds(derived_log10=derived_threshold, independent_log10=independent_threshold)
    cand, ref = open_side(candidate), open_side(reference)
    remote = cand.ckpt.io_stats().remote
    settings = replace(settings, views="input" if views == "input" or (views == "auto" and remote) else "all")
    try:
        with progress_bar() as progress:
            result = run_compare(cand, ref, settings, thresholds, progress)
    finally:
        cand.ckpt.close()
        ref.ckpt.close()
    result["candidate"]["path"], result["reference"]["path"] = candidate, reference
    if output:
        import json

        output.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    if report:
        from simsa.report.lineage_report import render_lineage_html

        report.write_text(render_lineage_html(result), encoding="utf-8")
    if as_json:
        emit_json(result)
        return
    _print_result(result, report)


@app.command("compare-many")
def compare_many_cmd(
    candidates: Annotated[list[str], typer.Option("--candidate", help="A candidate model (repeat for several).")],
    references: Annotated[list[str], typer.Option("--reference", help="A reference model or .simsa-fp fingerprint "
                                                                      "(repeat for several).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print every result as JSON.")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write each pair's JSON result into "
                                                                       "this folder.")] = None,
    units: CandUnits = 256,
    ref_units: RefUnits = 8192,
    coords: Coords = 512,
    draws: Draws = 24,
    seed: Seed = 0,
    derived_threshold: DerivedAt = 6.0,
    independent_threshold: IndependentBelow = 2.0,
    views: Annotated[str, typer.Option(help="all, input, or auto (input when the candidate is a hub reference).")
                     ] = "auto",
    executor: Annotated[str | None, typer.Option(help="serial (default) or ray; default $SIMSA_EXECUTOR.")] = None,
    results: Annotated[Path | None, typer.Option(help="Where finished compares are kept by content (default: beside "
                                                      "the registry's cache).")] = None,
) -> None:
    """Compare every --candidate with every --reference, one work unit per pair, keyed by both sides' content and
    the settings: a rerun compares only what changed, and a pair that fails is reported beside the others.

    Results are those `simsa lineage compare` gives for the pair, without their timings (kept under `measured`)."""
    import json
    from dataclasses import asdict

    from simsa.errors import InputError
    from simsa.lineage.fingerprints.registry import default_registry
    from simsa.lineage.fingerprints.service import compare_many
    from simsa.scale import ResultStore, open_executor

    if views not in ("auto", "all", "input"):
        raise InputError("--views must be auto, all or input")
    settings = asdict(_settings(units, ref_units, coords, draws, seed)) | {"views": views}
    thresholds = {"derived_log10": derived_threshold, "independent_log10": independent_threshold}
    pairs = [(c, r) for c in candidates for r in references]
    store = ResultStore(results or default_registry().parent / "units")
    with progress_bar() as progress, open_executor(executor) as chosen:
        run = compare_many(pairs, settings, thresholds, chosen, store, progress)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        for i, item in enumerate(run.compares(), start=1):
            if item["result"] is not None:
                (output / f"pair-{i:03d}.json").write_text(json.dumps(item, ensure_ascii=False, indent=2),
                                                           encoding="utf-8")
    if as_json:
        emit_units_json(run.to_dict(), run.failed)
        return
    colors = {"identical": "bold red", "derived": "red", "independent": "green", "inconclusive": "yellow"}
    table = Table("candidate", "reference", "verdict", "log10 p", "how")
    for item in run.compares():
        result = item["result"]
        if result is None:
            table.add_row(escape(item["candidate"]), escape(item["reference"]),
                          f"[red]failed[/]: {escape(str(item['error']))}", "—", "—")
            continue
        v = result["verdict"]
        table.add_row(escape(item["candidate"]), escape(item["reference"]), f"[{colors.get(v, 'white')}]{v}[/]",
                      f"{result['log10_p']:.1f}", "already compared" if item["cached"] else "compared")
    console.print(table)
    fail_if_units_failed(run.failed, len(run.results), "compares")


def _print_result(result: Mapping[str, Any], report: Path | None) -> None:
    colors = {"identical": "bold red", "derived": "red", "independent": "green", "inconclusive": "yellow"}
    v = result["verdict"]
    console.print(f"Verdict: [{colors.get(v, 'white')}]{v}[/]   log10 p = {result['log10_p']:.2f}")
    table = Table(Column("component", no_wrap=True), Column("verdict", no_wrap=True), "log10 p",
                  "layer map (cand←ref)", "no evidence", "identical")
    for c in result["components"]:
        lm = ", ".join(f"{a}←{b}" for a, b, _ in c["layer_map"][:10]) + (" …" if len(c["layer_map"]) > 10 else "")
        table.add_row(escape(c["name"]), f"[{colors.get(c['verdict'], 'white')}]{c['verdict']}[/]",
                      "—" if c["log10_p"] is None else f"{c['log10_p']:.1f}", escape(lm) or "—",
                      escape(", ".join(map(str, c.get("unmapped_layers", [])))) or "—",
                      f"{c['identity']['identical']}/{c['identity']['tensors']}")
    console.print(table)
    console.print(escape(result["summary"]))
    _print_validity(result.get("validity"))
    for side in ("candidate", "reference"):
        io = (result.get("io") or {}).get(side)
        if io and io.get("remote"):
            share = 100 * io["bytes_read"] / max(1, io["bytes_total"])
            console.print(f"{side} read remotely: {io['bytes_read'] / 2**20:.1f} MiB of "
                          f"{io['bytes_total'] / 2**30:.2f} GiB ({share:.2f} %) in {io['requests']} requests")
    if report:
        console.print(f"[green]✓[/] wrote HTML report to {escape(str(report))}")


def _print_validity(card: dict | None) -> None:
    """The validity card in a few lines: each assumption's outcome, then the family's measured error rate."""
    if not card:
        return
    marks = {"passed": "[green]passed[/]", "corrected": "[yellow]corrected[/]", "failed": "[red]failed[/]"}
    console.print("Validity:")
    for a in card.get("assumptions", []):
        where = f" ({a['stack']})" if a.get("stack") else ""
        console.print(f"  {escape(a['check'] + where)}: {marks.get(a['outcome'], escape(a['outcome']))} — "
                      f"{escape(a['detail'])}")
    cal = card.get("calibration")
    if cal:
        console.print(f"  calibration ({escape(str(cal['family']))}): {cal['derived']} of {cal['hard_negatives']} "
                      f"hard negatives called derived at log10 p ≤ {cal['threshold_log10']:g} (95 % upper bound "
                      f"{100 * cal['upper_95']:.1f} %)")
    else:
        console.print(f"  calibration: no hard-negative figures for the {escape(str(card.get('family')))} family")


@app.command("selftest")
def selftest(
    model: Annotated[str, typer.Argument(help="Model directory or .safetensors file to disguise.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    control: Annotated[str | None, typer.Option(help="An independently trained model of the same family to use as "
                                                     "a control, besides the generated ones (Gaussian, "
                                                     "layout-matched, zero-padded).")] = None,
    disguise: Annotated[list[str] | None, typer.Option("--disguise", help="Only this disguise (repeatable).")] = None,
    units: Annotated[int, typer.Option(help="Candidate hidden units sampled per unit group.")] = 256,
    ref_units: Annotated[int, typer.Option(help="Reference hidden units kept per unit group.")] = 8192,
    coords: Annotated[int, typer.Option(help="Residual coordinates used.")] = 512,
    draws: Annotated[int, typer.Option(help="Coordinate permutations drawn for the null.")] = 24,
    seed: Annotated[int, typer.Option(help="Seed for the disguises and the sampling.")] = 0,
    workdir: Annotated[Path | None, typer.Option(help="Write disguised copies here (default: a temporary "
                                                      "directory, removed after).")] = None,
) -> None:
    """Disguise MODEL in every output-preserving way and check compare still finds it derived.

    Also disguises an independent control and checks its verdict does not change. Exit code 1 when any disguise
    changes a verdict, 2 for unreadable input.
    """
    from simsa.errors import InputError
    from simsa.lineage.selftest.run import selftest as run_selftest

    settings = _settings(units, ref_units, coords, draws, seed)
    try:
        with progress_bar() as progress:
            result = run_selftest(model, control=control, disguises=disguise, settings=settings, seed=seed,
                                  workdir=workdir, progress=progress)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if as_json:
        emit_json(result)
    else:
        table = Table(Column("disguise", no_wrap=True), "disguised copy", "control", "result")
        for row in result["disguises"]:
            if not row["applicable"]:
                table.add_row(row["disguise"], "[dim]not applicable[/]", "", escape(row["reason"]))
                continue
            d, c = row["disguised"], row["control"]
            table.add_row(row["disguise"], f"{d['verdict']} ({d['log10_p']:.1f}, basis {d['alignment']})",
                          f"{c['verdict']} ({c['log10_p']:.2f})",
                          "[green]pass[/]" if row["passed"] else f"[red]FAIL[/] {escape(row['problem'])}")
        console.print(table)
        controls = Table(Column("control", no_wrap=True), "verdict", "log10 p", "result", title="Controls")
        for c in result.get("controls", []):
            if c.get("verdict") is None:
                controls.add_row(escape(c["name"]), "[dim]skipped[/]", "", escape(c.get("reason") or ""))
                continue
            controls.add_row(escape(c["name"]), c["verdict"], f"{c['log10_p']:.2f}",
                             "[green]pass[/]" if c["passed"] else "[red]FAIL[/] found derived")
        console.print(controls)
        base = result["control_baseline"]
        console.print(f"Control undisguised: {base['verdict']} (log10 p {base['log10_p']:.2f}). "
                      f"{result['applied']} disguises applied in {result['seconds']:.1f} s: "
                      + ("[green]all verdicts held[/]" if result["passed"] else
                         f"[red]failed: {escape(', '.join(result['failed']) or 'control')}[/]"))
    if not result["passed"]:
        raise typer.Exit(1)


@app.command("fingerprint")
def fingerprint(
    models: Annotated[list[str], typer.Argument(help="Model directories, .safetensors/.gguf files or hub references "
                                                     "(one or many).")],
    registry: Annotated[Path | None, typer.Option(help="Registry directory to store them in (default: "
                                                       "$SIMSA_LINEAGE_REGISTRY or the user cache).")] = None,
    name: Annotated[str | None, typer.Option(help="Name in the registry (default: the model's folder name; one "
                                                  "model only).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the fingerprint to this file instead "
                                                                       "of a registry (one model only).")] = None,
    ref_units: Annotated[int, typer.Option(help="Units kept per unit group.")] = 512,
    coords: Annotated[int, typer.Option(help="Residual coordinates kept.")] = 256,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    executor: Annotated[str | None, typer.Option(help="serial (default) or ray (a Ray cluster: $RAY_ADDRESS, else a "
                                                      "local instance); default $SIMSA_EXECUTOR.")] = None,
    results: Annotated[Path | None, typer.Option(help="Where finished units are kept, by content, so a rerun builds "
                                                      "only what is new (default: beside the registry's cache).")
                       ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was stored as JSON.")] = False,
) -> None:
    """Store a compact fingerprint of each MODEL, enough to compare candidates with it later without its weights.

    Two runs on the same model write the same bytes. Several models (or --executor ray) run as work units keyed by
    the checkpoint's content and the settings: one that fails is reported and the others are stored."""
    from simsa.errors import InputError
    from simsa.lineage.formats.fingerprint import FingerprintSettings
    from simsa.scale import executor_name

    if min(ref_units, coords) < 16:
        raise InputError("--ref-units and --coords must be at least 16")
    if len(models) > 1 and (name or output):
        raise InputError("--name and --output take one model; several models go into a registry")
    settings = FingerprintSettings(ref_units=ref_units, coords=coords, seed=seed)
    if len(models) == 1 and executor_name(executor) == "serial" and results is None:
        _fingerprint_one(models[0], settings, registry, name, output, as_json)
    else:
        _fingerprint_many(models, settings, registry, executor, results, as_json)


def _fingerprint_one(model: str, settings: Any, registry: Path | None, name: str | None, output: Path | None,
                     as_json: bool) -> None:
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.fingerprints.build import build_fingerprint
    from simsa.lineage.fingerprints.registry import Registry, default_registry

    side = open_side(model)
    try:
        with progress_bar() as progress:
            fp = build_fingerprint(side, settings, name=name or _default_name(model), progress=progress)
        io = side.ckpt.io_stats().to_dict()
    finally:
        side.ckpt.close()
    info: dict[str, Any]
    if output:
        size = fp.save(output)
        info = {"file": str(output), "bytes": size}
    else:
        reg = Registry.open(registry or default_registry(), create=True)
        info = reg.add(fp, name or fp.name)
        info["registry"] = str(reg.root)
    params = int(fp.meta.get("parameters") or 0)
    info.update(parameters=params, seconds=fp.meta["seconds"],
                bytes_per_billion_parameters=round(info["bytes"] / params * 1e9) if params else None, io=io)
    if as_json:
        emit_json(info)
        return
    where = info.get("file") or f"registry {info['registry']} as {info['name']}"
    console.print(f"[green]✓[/] fingerprint of {escape(model)} ({params:,} parameters) stored in {escape(where)}: "
                  f"{info['bytes'] / 2**20:.2f} MiB in {info['seconds']:.1f} s")


def _fingerprint_many(models: list[str], settings: Any, registry: Path | None, executor: str | None,
                      results: Path | None, as_json: bool) -> None:
    from simsa.lineage.fingerprints.registry import Registry, default_registry
    from simsa.lineage.fingerprints.service import fingerprint_many
    from simsa.scale import ResultStore, open_executor

    reg = Registry.open(registry or default_registry(), create=True)
    store = ResultStore(results or default_registry().parent / "units")
    named = [(m, _default_name(m)) for m in models]
    with progress_bar() as progress, open_executor(executor) as chosen:
        run = fingerprint_many(named, settings, reg, chosen, store, progress)
    if as_json:
        emit_units_json(run.to_dict(), run.failed)
        return
    for line in run.lines():
        console.print(escape(line) if not line.startswith("✓") else f"[green]✓[/]{escape(line[1:])}")
    fail_if_units_failed(run.failed, len(run.results), "fingerprints")


def _default_name(model: str) -> str:
    """A registry name for a model: ``org/name`` for a hub reference, else the folder or file name."""
    from simsa.lineage.formats.hub import parse_model_ref

    ref = parse_model_ref(model) if not Path(model).exists() else None
    return ref.repo_id if ref else Path(model.rstrip("/")).stem if model.endswith(".gguf") else \
        Path(model.rstrip("/")).name


@app.command("scan")
def scan(
    candidates: Annotated[list[str], typer.Argument(help="Candidate model directories, files or hub references "
                                                         "(one or many).")],
    registry: Annotated[Path | None, typer.Option(help="Registry directory (default: $SIMSA_LINEAGE_REGISTRY or "
                                                       "the user cache).")] = None,
    correction: Annotated[str, typer.Option(help="Multiple-testing correction: holm (family-wise) or bh "
                                                 "(false discovery rate).")] = "holm",
    keep: Annotated[int, typer.Option(help="Fully compare this many best matches (layer maps, components).")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    derived_threshold: Annotated[float, typer.Option(help="Derived when adjusted -log10 p is at least this.")] = 6.0,
    independent_threshold: Annotated[float, typer.Option(help="Independent when adjusted -log10 p is below "
                                                               "this.")] = 2.0,
    executor: Annotated[str | None, typer.Option(help="serial (default) or ray, for several candidates; default "
                                                      "$SIMSA_EXECUTOR.")] = None,
    results: Annotated[Path | None, typer.Option(help="Where finished scans are kept by content (default: beside "
                                                      "the registry's cache).")] = None,
) -> None:
    """Test each CANDIDATE against every reference fingerprint in a registry; matches best first, p-values adjusted.

    Several candidates (or --executor ray) run as work units, one per candidate, keyed by the candidate's content,
    the registry index and the options: a rerun scans only what changed."""
    from simsa.errors import InputError
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.fingerprints.registry import Registry, default_registry
    from simsa.lineage.fingerprints.scan import CORRECTIONS
    from simsa.lineage.fingerprints.scan import scan as run_scan
    from simsa.lineage.stats.verdict import Thresholds
    from simsa.scale import executor_name

    if correction not in CORRECTIONS:
        raise InputError(f"--correction must be one of {', '.join(CORRECTIONS)}")
    reg = Registry.open(registry or default_registry())
    if len(candidates) > 1 or executor_name(executor) != "serial" or results is not None:
        options = {"correction": correction, "keep": keep, "derived_log10": derived_threshold,
                   "independent_log10": independent_threshold}
        _scan_many(candidates, reg, options, executor, results, as_json)
        return
    candidate = candidates[0]
    cand = open_side(candidate)
    try:
        with progress_bar() as progress:
            result = run_scan(cand, reg, correction=correction, keep=keep, progress=progress,
                              thresholds=Thresholds(derived_log10=derived_threshold,
                                                    independent_log10=independent_threshold))
    finally:
        cand.ckpt.close()
    result["candidate"]["path"] = candidate
    if as_json:
        emit_json(result)
        return
    colors = {"identical": "bold red", "derived": "red", "independent": "green", "inconclusive": "yellow"}
    table = Table("reference", "verdict", "adjusted log10 p", "screen log10 p", "layer map (cand←ref)")
    for m in result["matches"][:20]:
        lm = ""
        for c in m.get("compare", {}).get("components", []):
            if c["layer_map"]:
                lm = f"{c['name']}: " + ", ".join(f"{a}←{b}" for a, b, _ in c["layer_map"][:8])
                break
        table.add_row(escape(m["reference"]), f"[{colors.get(m['verdict'], 'white')}]{m['verdict']}[/]",
                      f"{m['adjusted_log10_p']:.1f}", f"{m['screen_log10_p']:.1f}", escape(lm) or "—")
    console.print(table)
    console.print(f"{result['tested']} of {result['references']} references tested ({result['correction']} "
                  f"correction) in {result['seconds']['total']:.1f} s; descends from: "
                  + (escape(", ".join(result["derived"])) or "none of them"))


def _scan_many(candidates: list[str], reg: Any, options: dict[str, Any], executor: str | None,
               results: Path | None, as_json: bool) -> None:
    from simsa.lineage.fingerprints.registry import default_registry
    from simsa.lineage.fingerprints.service import scan_many
    from simsa.scale import ResultStore, open_executor

    store = ResultStore(results or default_registry().parent / "units")
    with progress_bar() as progress, open_executor(executor) as chosen:
        run = scan_many(candidates, reg, options, chosen, store, progress)
    if as_json:
        emit_units_json(run.to_dict(), run.failed)
        return
    scans = run.scans()
    table = Table("candidate", "derived from", "best match", "adjusted log10 p")
    for item in scans:
        result = item["result"]
        if result is None:
            table.add_row(escape(item["candidate"]), f"[red]failed[/]: {escape(str(item['error']))}", "—", "—")
            continue
        best = result["matches"][0] if result["matches"] else None
        table.add_row(escape(item["candidate"]), escape(", ".join(result["derived"])) or "none",
                      escape(best["reference"]) if best else "—",
                      f"{best['adjusted_log10_p']:.1f}" if best else "—")
    console.print(table)
    fail_if_units_failed(run.failed, len(run.results), "scans")


registry_app = typer.Typer(help="Fingerprint registries: list, export, import, remove.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("list")
def registry_list(
    registry: Annotated[Path | None, typer.Option(help="Registry directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the references in a registry."""
    from simsa.lineage.fingerprints.registry import Registry, default_registry, registry_bytes

    reg = Registry.open(registry or default_registry())
    entries = sorted(reg.entries.values(), key=lambda e: e["name"])
    if as_json:
        emit_json({"registry": str(reg.root), "entries": entries, "bytes": registry_bytes(reg)})
        return
    table = Table("name", "model type", "parameters", "size", "source")
    for e in entries:
        table.add_row(escape(e["name"]), escape(str(e.get("model_type"))), f"{int(e.get('parameters') or 0):,}",
                      f"{int(e.get('bytes') or 0) / 2**20:.2f} MiB", escape(str(e.get("source"))))
    console.print(table)


@registry_app.command("export")
def registry_export(
    archive: Annotated[Path, typer.Argument(help="Tar file to write.")],
    registry: Annotated[Path | None, typer.Option(help="Registry directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Write the whole registry as one file an agency can publish."""
    from simsa.lineage.fingerprints.registry import Registry, default_registry

    n = Registry.open(registry or default_registry()).export(archive)
    if as_json:
        emit_json({"archive": str(archive), "fingerprints": n})
    else:
        console.print(f"[green]✓[/] exported {n} fingerprints to {escape(str(archive))}")


@registry_app.command("import")
def registry_import(
    archive: Annotated[Path, typer.Argument(help="Tar file written by 'registry export'.")],
    registry: Annotated[Path | None, typer.Option(help="Registry directory (created if missing).")] = None,
    replace: Annotated[bool, typer.Option(help="Replace entries of the same name.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check and merge a published registry into this one."""
    from simsa.lineage.fingerprints.registry import Registry, default_registry

    added = Registry.open(registry or default_registry(), create=True).import_archive(archive, replace=replace)
    if as_json:
        emit_json({"archive": str(archive), "added": added})
    else:
        console.print(f"[green]✓[/] imported {len(added)} fingerprints: {escape(', '.join(added)) or '—'}")


@registry_app.command("remove")
def registry_remove(
    name: Annotated[str, typer.Argument(help="Entry to remove.")],
    registry: Annotated[Path | None, typer.Option(help="Registry directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Remove one reference from a registry."""
    from simsa.lineage.fingerprints.registry import Registry, default_registry

    Registry.open(registry or default_registry()).remove(name)
    if as_json:
        emit_json({"removed": name})
    else:
        console.print(f"[green]✓[/] removed {escape(name)}")


@app.command("attribute")
def attribute(
    candidate: Annotated[str, typer.Argument(help="Candidate model (directory, file or hub reference).")],
    parents: Annotated[list[str], typer.Argument(help="Two or more possible parents (models or .simsa-fp).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the attribution as JSON.")] = False,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Attribute each candidate layer to its parent(s): for merges of several models."""
    from simsa.errors import InputError
    from simsa.lineage.compare.result import compare as run_compare
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.stats.attribution import attribute as run_attribute
    from simsa.lineage.stats.correspondence import SamplingSettings

    if len(parents) < 2:
        raise InputError("give at least two parents (for one, use 'simsa lineage compare')")
    cand = open_side(candidate)
    results = {}
    try:
        with progress_bar() as progress:
            for i, parent in enumerate(parents):
                progress("parents", i, len(parents))
                ref = open_side(parent)
                try:
                    results[parent] = run_compare(cand, ref, SamplingSettings(seed=seed))
                finally:
                    ref.ckpt.close()
    finally:
        cand.ckpt.close()
    out = run_attribute(results)
    out["candidate"] = candidate
    if as_json:
        emit_json(out)
        return
    for name, p in out["parents"].items():
        console.print(f"{escape(name)}: {p['verdict']} (log10 p {p['log10_p']:.1f})")
    table = Table("component", "layers by parent")
    for comp, info in sorted(out["components"].items()):
        table.add_row(escape(comp), escape(info["summary"]))
    console.print(table)
