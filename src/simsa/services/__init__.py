"""Use cases, one entry point each, shared by the shells (the command line and the web app).

Each entry point takes an open SQLAlchemy `Session` (the caller opens it, e.g. `Store.session()`, and the
transaction commits when that block ends), plain arguments and, for writes, the `actor`; it returns a typed result
(a frozen dataclass with `to_dict()`, the JSON the shells print or serve). A program is named by a `ProgramRef`:
the path of a .toml file, the id of a program loaded in the store, or a `LoadedProgram` already read. A web request
must never name a file: the web app looks the id up in the store and passes the `LoadedProgram`. Writes register
the program's version first when it is new (`programs.for_writing`); what that warns about (decisions in force
whose rules the version changes) is in the result's `warnings`.

Programs
    resolve a reference ................. programs.resolve(session, ref)
    resolve and register, to write ...... programs.for_writing(session, ref, actor) -> Writable
    load a version (`program load`) ..... programs.register_with_warnings(session, loaded, actor) -> Registration
    list and compare versions ........... program_versions.list_versions, program_versions.diff_versions

Scores
    record scores ....................... scores.record(session, program_ref, items, actor, at=None) -> RecordedScores
    import a score file (or replace one)  score_files.read_score_file(path), then
                                          corrections.import_scores(session, program_ref, items, actor,
                                          source_name=..., replace_batch=None) -> ImportResult
    void a score ........................ corrections.void_score(session, program_ref, score_id, reason, actor)
    undo an import ...................... corrections.undo_import(session, program_ref, batch_id, reason, actor)
    history, current values ............. scores.history, scores.current
    score a benchmark run and record it . bench_scores.record_suite_score(session, program_ref, runs, run_id,
                                          suite_id, stage, team, actor, dry_run=False) -> SuiteScoreRecord

Gates
    record a result ..................... gates.record_result(session, program_ref, stage_id=, team_id=, gate_id=,
                                          passed=, evidence=, actor=, link=None, example=False) -> GateRecording
    decide one from a lineage comparison  gates.read_lineage_result(path), then
                                          gates.record_result_from_lineage(session, program_ref, ...) -> LineageGate
    import a gate file .................. gate_files.read_gate_file(path), then
                                          gate_files.import_gates(session, program_ref, items, actor,
                                          source_name=...) -> GateImport
    void a result ....................... corrections.void_gate(session, program_ref, result_id, reason, actor)

Stages
    status before deciding .............. status.stage_status(session, loaded, stage_id) -> StageStatus
    decide (or a dry run) ............... decisions.decide(session, program_ref, stage_id, actor, at=None,
                                          supersede=False, reason=None, dry_run=False) -> StageDecision
    import a published decision ......... decisions.import_decision(session, program_ref, path, actor,
                                          supersede=False, reason=None) -> ImportedDecision
    read a decision ..................... decision_records.get, decision_records.body, decision_records.chain,
                                          decision_records.effective (the one in force)
    file an appeal ...................... appeals.file_appeal(session, program_ref, stage_id, team_id, grounds, actor,
                                          at=None) -> FiledAppeal
    resolve an appeal ................... appeals.resolve_appeal(session, program_ref, appeal_id, upheld, reason,
                                          actor, at=None) -> ResolvedAppeal
    list appeals ........................ appeals.listing(session, key, stage_id)

Reports
    render a stage report ............... reports.render(session, program_ref, stage, fmt, lang="both",
                                          decision_id=None) -> str
    what a report is rendered from ...... reports.report_inputs(session, program_ref, stage) -> ReportInputs

Below the entry points are their building blocks, for callers that hold a registered version already:
`scores.add`, `gates.record`, `decisions.decide_and_store` and `decisions.compute`, `appeals.file` and
`appeals.resolve`.

Beside these, modules that serve only the web app (read models of its pages and API, its forms, accounts:
api_views, public_views, web_forms, account_admin) call the entry points above for the use cases listed here.

Submodules are imported where they are used, never here: the command line's start-up time matters.
"""
