"""The benchmark task catalog: what `simsa bench tasks` lists and what a run may ask for.

Two kinds of task: simsa's own (lm-eval task definitions in `simsa/bench/lm_tasks` over data shipped in the
package, verified against `data/SHA256SUMS`) and a curated list of lm-evaluation-harness's stock tasks, whose data
lm-eval fetches from the Hugging Face Hub. Nothing here downloads: a stock task's dataset is read from its YAML
config and looked up in the local `datasets` cache, the only place `datasets.load_dataset` reads from offline.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from simsa.bench.lm_tasks import TASKS_DIR
from simsa.bench.lm_tasks import utils as task_data
from simsa.errors import CheckFailed, InputError

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

__all__ = [
    "TASKS_DIR",
    "TaskInfo",
    "check_tasks_available",
    "dataset_provenance",
    "is_offline",
    "list_tasks",
    "task_manager",
    "task_manager_for",
]

Status = Literal["ready", "hash mismatch", "cached", "needs download", "unavailable offline"]


@dataclass(frozen=True)
class TaskInfo:
    """One task or group as the catalog shows it."""

    name: str
    origin: Literal["simsa", "lm-eval"]
    description: str
    source: str  # simsa: upstream repo @ commit and local file(s) with sha256; lm-eval: HF dataset path[/name]
    licence: str | None
    n_items: int | None  # simsa tasks only: documents in the shipped file(s)
    status: Status

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- simsa tasks


@dataclass(frozen=True)
class _Ours:
    folder: str  # its row in data/SOURCES.md
    files: tuple[str, ...]
    description: str


_KOBEST = tuple(task_data.KOBEST_FILES.values())
_OURS: dict[str, _Ours] = {
    "simsa_kobest": _Ours("kobest", _KOBEST, "KoBEST, all five tasks (size-weighted means of acc, acc_norm, f1)"),
    "simsa_kobest_boolq": _Ours("kobest", (task_data.KOBEST_FILES["boolq"],),
                                "KoBEST BoolQ: yes/no questions on a paragraph (acc, macro f1)"),
    "simsa_kobest_copa": _Ours("kobest", (task_data.KOBEST_FILES["copa"],),
                               "KoBEST COPA: the more plausible cause or effect (acc, macro f1)"),
    "simsa_kobest_hellaswag": _Ours("kobest", (task_data.KOBEST_FILES["hellaswag"],),
                                    "KoBEST HellaSwag: the most plausible continuation of four (acc, acc_norm, f1)"),
    "simsa_kobest_sentineg": _Ours("kobest", (task_data.KOBEST_FILES["sentineg"],),
                                   "KoBEST SentiNeg: sentiment of negated sentences (acc, macro f1)"),
    "simsa_kobest_wic": _Ours("kobest", (task_data.KOBEST_FILES["wic"],),
                              "KoBEST WiC: is a word used in the same sense in two sentences (acc, macro f1)"),
    "simsa_kobbq": _Ours("kobbq", (task_data.KOBBQ_FILE,),
                         "KoBBQ: social-bias QA (acc, acc_amb, acc_dis, diff_bias_amb, diff_bias_dis)"),
    "simsa_kosbi": _Ours("kosbi", (task_data.KOSBI_FILE,),
                         "KoSBi: is a sentence after a context safe or unsafe (acc, macro f1, unsafe_recall)"),
}


@functools.cache
def _sources() -> dict[str, tuple[str, str | None]]:
    """data/SOURCES.md's table: folder -> (upstream "repo @ commit, path", licence)."""
    rows: dict[str, tuple[str, str | None]] = {}
    text = (task_data.DATA_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].endswith("/") and not cells[0].startswith("-"):
            rows[cells[0].rstrip("/")] = (cells[2].replace("`", ""), re.sub(r"\s*\(.*\)$", "", cells[3]) or None)
    return rows


@functools.cache
def _n_rows(relpath: str, sha256: str) -> int:
    """Records in a data file, cached by its hash (a changed file is counted again)."""
    return len(task_data.read_rows(relpath))


def _our_info(name: str, spec: _Ours) -> TaskInfo:
    """Status "ready" when every file matches its recorded sha256; n_items counted only then."""
    upstream, licence = _sources().get(spec.folder, ("see data/SOURCES.md", None))
    hashes = {f: task_data.file_sha256(task_data.DATA_DIR / f) for f in spec.files}
    ok = all(h is not None and h == task_data.expected_sha256(f) for f, h in hashes.items())
    local = "; ".join(f"{f} sha256 {h or 'missing'}" for f, h in hashes.items())
    n_items = sum(_n_rows(f, h) for f, h in hashes.items() if h) if ok else None
    return TaskInfo(name=name, origin="simsa", description=spec.description, source=f"{upstream}; local {local}",
                    licence=licence, n_items=n_items, status="ready" if ok else "hash mismatch")


def _verify_ours(name: str) -> None:
    """Raise CheckFailed (the data was altered) when a simsa task's file does not match SHA256SUMS."""
    for relpath in _OURS[name].files:
        try:
            task_data.verify_file(relpath)
        except ValueError as exc:
            raise CheckFailed(f"task {name}: {exc}") from None


# --------------------------------------------------------------------------- lm-eval tasks


@dataclass(frozen=True)
class _Stock:
    name: str
    folder: str  # under lm_eval/tasks: indexing only these folders is what keeps listing fast
    description: str
    licence: str | None = None  # only where the dataset's licence is well established


_STOCK: tuple[_Stock, ...] = (
    _Stock("kobest", "kobest", "KoBEST, five Korean understanding tasks (stock, Hub data)", "CC-BY-SA-4.0"),
    _Stock("kmmlu", "kmmlu", "KMMLU: 45 subjects of Korean expert exams, 4-way multiple choice", "CC-BY-ND-4.0"),
    _Stock("kmmlu_hard", "kmmlu", "KMMLU-Hard: the KMMLU questions that strong models miss", "CC-BY-ND-4.0"),
    _Stock("haerae", "haerae", "HAE-RAE Bench: Korean vocabulary, history and general knowledge"),
    _Stock("click", "click", "CLIcK: Korean culture and language knowledge"),
    _Stock("kormedmcqa", "kormedmcqa", "KorMedMCQA: Korean doctor, nurse, pharmacist and dentist licensing exams"),
    _Stock("hrm8k", "hrm8k", "HRM8K: Korean maths reasoning (GSM8K, MATH, Omni-MATH, MMMLU, KSM)"),
    _Stock("kbl", "kbl", "KBL: Korean legal knowledge, reasoning and bar exam questions"),
    _Stock("csatqa", "csatqa", "CSAT-QA: Korean college scholastic ability test questions"),
    _Stock("global_mmlu_ko", "global_mmlu/default/ko", "Global-MMLU, Korean", "Apache-2.0"),
    _Stock("belebele_kor_Hang", "belebele", "Belebele, Korean reading comprehension", "CC-BY-SA-4.0"),
    _Stock("mmlu", "mmlu/default", "MMLU: 57 subjects, 4-way multiple choice", "MIT"),
    _Stock("arc_challenge", "arc", "ARC-Challenge: grade-school science questions", "CC-BY-SA-4.0"),
    _Stock("hellaswag", "hellaswag", "HellaSwag: commonsense sentence completion", "MIT"),
    _Stock("gsm8k", "gsm8k", "GSM8K: grade-school maths word problems (generation)", "MIT"),
    _Stock("truthfulqa_mc2", "truthfulqa", "TruthfulQA MC2: truthfulness, multiple true answers", "Apache-2.0"),
    _Stock("winogrande", "winogrande", "WinoGrande: pronoun resolution"),
    _Stock("ifeval", "ifeval", "IFEval: verifiable instruction following (generation)", "Apache-2.0"),
    _Stock("bbh", "bbh/cot_fewshot", "BIG-Bench Hard: 27 hard reasoning tasks, chain-of-thought few-shot", "MIT"),
)
_PACKAGED_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "webdataset", "imagefolder", "audiofolder"}


def _lm_eval_tasks_root() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


@functools.cache
def task_manager(stock: bool = True) -> TaskManager:
    """lm-eval's TaskManager with simsa's tasks (cached per process).

    stock=True indexes all of lm-eval's ~15,000 task configs as well (seconds); stock=False only simsa's (ms).
    """
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=stock)


def task_manager_for(names: Iterable[str]) -> TaskManager:
    """The cheapest cached TaskManager that knows all `names` (simsa-only runs skip lm-eval's index)."""
    return task_manager(stock=not set(names) <= set(_OURS))


@functools.cache
def _curated_manager() -> TaskManager:
    """A TaskManager over only the curated stock tasks' folders: a fraction of a second instead of seconds."""
    from lm_eval.tasks import TaskManager

    root = _lm_eval_tasks_root()
    folders = sorted({str(root / s.folder) for s in _STOCK if (root / s.folder).is_dir()})
    return TaskManager(include_path=folders, include_defaults=False)


def _leaf_configs(manager: TaskManager, name: str, seen: frozenset[str] = frozenset()) -> Iterator[dict[str, Any]]:
    """The unresolved YAML configs of every task that `name` (task, group or tag) runs."""
    entry = manager.task_index.get(name)
    if entry is None or name in seen:
        return
    seen = seen | {name}
    kind = entry.kind.name  # TASK, PY_TASK, GROUP or TAG
    if kind in ("TASK", "PY_TASK"):
        yield entry.cfg or {}
        return
    children = entry.tags if kind == "TAG" else (entry.cfg or {}).get("task", [])
    for child in children if isinstance(children, list | set | tuple) else [children]:
        if isinstance(child, str):
            yield from _leaf_configs(manager, child, seen)
        elif isinstance(child, dict) and "task" in child:  # an inline task in a group
            yield child


def leaf_task_names(manager: TaskManager, name: str) -> list[str]:
    """The tasks that `name` (a task, group or tag) runs, by the names their items are logged under."""
    return [str(cfg["task"]) for cfg in _leaf_configs(manager, name) if isinstance(cfg.get("task"), str)]


def _datasets(configs: Iterable[dict[str, Any]]) -> list[tuple[str, str | None, dict[str, Any]]]:
    """Distinct (dataset_path, dataset_name, dataset_kwargs) of the configs, in first-seen order."""
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    for cfg in configs:
        path = cfg.get("dataset_path")
        if isinstance(path, str):
            found.setdefault((path, cfg.get("dataset_name")), cfg.get("dataset_kwargs") or {})
    return [(path, name, kwargs) for (path, name), kwargs in found.items()]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_offline(offline: bool = False) -> bool:
    """True when asked, or when HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set (read now, not at import)."""
    return offline or _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("HF_DATASETS_OFFLINE"))


def _datasets_cache() -> Path:
    """The `datasets` cache directory, from the environment as `datasets` resolves it."""
    if os.environ.get("HF_DATASETS_CACHE"):
        return Path(os.environ["HF_DATASETS_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "datasets"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(xdg).expanduser() / "huggingface" / "datasets"


def _is_cached(path: str, name: str | None, kwargs: dict[str, Any]) -> bool:
    """Whether `datasets.load_dataset(path, name)` can be answered from local files.

    Hub datasets: offline, `datasets` falls back to its prepared cache `<cache>/<namespace>___<name>/<config>/
    <version>/<hash>` (the hub download cache alone is not enough). Local paths and packaged builders over local
    data files need nothing.
    """
    from datasets.naming import camelcase_to_snakecase

    if path in _PACKAGED_BUILDERS:
        files = kwargs.get("data_files")
        values = files.values() if isinstance(files, dict) else [files]
        flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
        return bool(flat) and all(isinstance(v, str) and Path(v).expanduser().exists() for v in flat)
    if Path(path).expanduser().exists():
        return True
    parts = path.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    root = _datasets_cache() / "___".join(parts)
    pattern = f"{name}/*/*" if name else "*/*/*"
    return any(p.is_dir() for p in root.glob(pattern))


def _describe_source(data: Sequence[tuple[str, str | None, dict[str, Any]]]) -> str:
    """"skt/kobest_v1 (5 configs: boolq, ...)", "allenai/ai2_arc/ARC-Challenge" or "unknown"."""
    by_path: dict[str, list[str]] = {}
    for path, name, _ in data:
        by_path.setdefault(path, [])
        if name:
            by_path[path].append(name)
    parts = []
    for path, names in by_path.items():
        if len(names) == 1:
            parts.append(f"{path}/{names[0]}")
        elif names:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            parts.append(f"{path} ({len(names)} configs: {shown})")
        else:
            parts.append(path)
    return "; ".join(parts) or "unknown (no dataset_path in its configs)"


def _stock_status(data: Sequence[tuple[str, str | None, dict[str, Any]]], offline: bool) -> Status:
    if data and all(_is_cached(*d) for d in data):
        return "cached"
    return "unavailable offline" if offline else "needs download"


def _stock_info(manager: TaskManager, name: str, description: str, licence: str | None, offline: bool) -> TaskInfo:
    data = _datasets(_leaf_configs(manager, name))
    return TaskInfo(name=name, origin="lm-eval", description=description, source=_describe_source(data),
                    licence=licence, n_items=None, status=_stock_status(data, offline))


# --------------------------------------------------------------------------- public API


def list_tasks(stock: bool = True, *, offline: bool = False) -> list[TaskInfo]:
    """simsa's tasks, then (stock=True) the curated lm-eval tasks present in the installed lm-eval."""
    infos = [_our_info(name, spec) for name, spec in _OURS.items()]
    if stock:
        manager, off = _curated_manager(), is_offline(offline)
        infos += [_stock_info(manager, s.name, s.description, s.licence, off)
                  for s in _STOCK if s.name in manager.task_index]
    return infos


def _resolve(name: str) -> TaskManager:
    """A manager that knows the stock task `name`: the curated one if it does, else all of lm-eval's."""
    curated = _curated_manager()
    if name in curated.task_index:
        return curated
    full = task_manager(stock=True)
    if name in full.task_index:
        return full
    close = difflib.get_close_matches(name, [*_OURS, *full.all_tasks], n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `simsa bench tasks` lists the known ones"
    raise InputError(f"unknown benchmark task {name!r}{hint}")


def check_tasks_available(names: list[str], offline: bool = False) -> None:
    """Fail fast, before any model is loaded, when a task cannot run here.

    InputError for an unknown name (with close matches) and, offline, for a stock task whose dataset is not in
    the local `datasets` cache; CheckFailed when a simsa task's shipped data does not match SHA256SUMS.
    """
    off = is_offline(offline)
    for name in names:
        if name in _OURS:
            _verify_ours(name)
            continue
        manager = _resolve(name)
        if not off:
            continue
        data = _datasets(_leaf_configs(manager, name))
        missing = sorted({path for path, ds_name, kwargs in data if not _is_cached(path, ds_name, kwargs)})
        if missing or not data:
            what = ", ".join(missing) or "a dataset that its config does not name"
            raise InputError(
                f"{name} needs the Hugging Face dataset {what}, which is not in the local cache and the run is "
                "offline; run once online or pre-download it"
            )


def dataset_provenance(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per task: where its data came from, for the run manifest (simsa: files with sha256; stock: HF dataset ids)."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        spec = _OURS.get(name)
        if spec is not None:
            upstream, licence = _sources().get(spec.folder, ("see data/SOURCES.md", None))
            files = {f: task_data.file_sha256(task_data.DATA_DIR / f) for f in spec.files}
            out[name] = {"origin": "simsa", "upstream": upstream, "licence": licence, "files": files,
                         "sha256": next(iter(files.values())) if len(files) == 1 else None}
            continue
        data = _datasets(_leaf_configs(_resolve(name), name))
        out[name] = {"origin": "lm-eval", "datasets": [
            {"path": path, "name": dname, "revision": (kwargs or {}).get("revision")} for path, dname, kwargs in data]}
    return out
