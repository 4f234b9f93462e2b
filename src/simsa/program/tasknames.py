"""The names a suite task may take, without importing lm-eval: checking a program file must stay cheap.

Three sources: simsa's own tasks (`simsa/bench/lm_tasks`), the curated lm-eval tasks `simsa bench tasks` lists,
and every task, group and tag of the pinned lm-eval release, extracted once into `lm_eval_tasks.txt.gz` (lm-eval
builds that index from ~15,000 YAML files, which takes seconds). `simsa.bench.catalog` holds the same first two
lists with their descriptions; a test keeps them equal. Regenerate the extract after changing the pinned lm-eval:
`python -m simsa.program.tasknames`.
"""

from __future__ import annotations

import difflib
import functools
import gzip
from pathlib import Path

LM_EVAL_VERSION = "0.4.13"
EXTRACT = Path(__file__).with_name("lm_eval_tasks.txt.gz")

SIMSA_TASKS: tuple[str, ...] = (
    "simsa_kobest", "simsa_kobest_boolq", "simsa_kobest_copa", "simsa_kobest_hellaswag", "simsa_kobest_sentineg",
    "simsa_kobest_wic", "simsa_kobbq", "simsa_kosbi",
)
CURATED_LM_EVAL_TASKS: tuple[str, ...] = (
    "kobest", "kmmlu", "kmmlu_hard", "haerae", "click", "kormedmcqa", "hrm8k", "kbl", "csatqa", "global_mmlu_ko",
    "belebele_kor_Hang", "mmlu", "arc_challenge", "hellaswag", "gsm8k", "truthfulqa_mc2", "winogrande", "ifeval",
    "bbh",
)


@functools.cache
def lm_eval_tasks() -> frozenset[str]:
    """Every task, group and tag name of the pinned lm-eval (empty if the extract is missing)."""
    try:
        text = gzip.decompress(EXTRACT.read_bytes()).decode("utf-8")
    except OSError:
        return frozenset()
    return frozenset(ln for ln in text.split("\n") if ln and not ln.startswith("#"))


def is_known(name: str) -> bool:
    """Whether `simsa bench run` can run a task of this name."""
    return name in SIMSA_TASKS or name in CURATED_LM_EVAL_TASKS or name in lm_eval_tasks()


def near(name: str) -> list[str]:
    """Up to three known names close to `name`, simsa's and the curated ones first."""
    first = difflib.get_close_matches(name, [*SIMSA_TASKS, *CURATED_LM_EVAL_TASKS], n=3, cutoff=0.75)
    if first:
        return first
    return difflib.get_close_matches(name, sorted(lm_eval_tasks()), n=3, cutoff=0.8)


def write_extract(path: Path = EXTRACT) -> int:
    """Write the installed lm-eval's task index (needs the bench extra); returns the number of names."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    version = getattr(lm_eval, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("lm_eval")
    names = sorted(TaskManager().task_index)
    body = f"# lm-eval {version} task index: {len(names)} names\n" + "\n".join(names) + "\n"
    path.write_bytes(gzip.compress(body.encode("utf-8"), mtime=0))
    return len(names)


if __name__ == "__main__":
    print(f"{write_extract()} names written to {EXTRACT.name}")
