"""What every command needs: the store and who is acting."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy and Alembic load only when a command opens the store
    from simsa.store.db import Store


@dataclass
class AppState:
    db_url: str | None = None
    actor: str | None = None
    lang: str = "en"
    json_errors: bool = False  # a command chose JSON output (--format json), so errors are JSON on stdout too
    _store: Store | None = None

    def store(self) -> Store:
        if self._store is None:
            from simsa.store.db import Store

            self._store = Store(self.db_url)
        return self._store

    def who(self) -> str:
        if self.actor:
            return self.actor
        env = os.environ.get("SIMSA_ACTOR")
        if env:
            return env
        try:
            return getpass.getuser()
        except Exception:  # no login name in some containers
            return "unknown"


STATE = AppState()
