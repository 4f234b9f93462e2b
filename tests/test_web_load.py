"""`simsa web` under a small load (benchmarks/web_load.py's functions, run small): concurrent public readers see no
errors; concurrent API writers lose and duplicate nothing, and the audit log still verifies."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "web_load.py"


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("web_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("web_load", module)
    spec.loader.exec_module(module)
    return module


web_load = _bench()


def test_readers_and_writers_at_once(db_url: str, tmp_path: Path) -> None:
    result = web_load.run_load(db_url, tmp_path, readers=20, seconds=3, writers=10, per_writer=3)
    reads, writes, check = result["reads"], result["writes"], result["check"]
    assert reads["errors"] == 0, reads["error_samples"]
    assert reads["requests"] > 20
    assert all(page["requests"] > 0 for page in reads["by_page"].values()), reads["by_page"]
    assert writes["errors"] == 0, writes["error_samples"]
    assert writes["acknowledged"] == 30
    assert check["stored"] == 30
    assert check["lost"] == [] and check["duplicated"] == [] and check["unacknowledged_stored"] == []
    assert check["audit_ok"], check["audit_problems"]
    assert result["server_errors"] == []
