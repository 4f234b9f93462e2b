"""`simsa evidence verify` as one use case: the package's checks, and its commitments looked up when asked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simsa.errors import InputError
from simsa.evidence.verify import Progress, Verification, verify
from simsa.services import commitments
from simsa.store.db import Store


def verify_package(root: str | Path, *, parents: Sequence[str | Path] = (), registry: str | Path | None = None,
                   store: Store | None = None, program: str | None = None, team: str | None = None,
                   stage: str | None = None, progress: Progress | None = None) -> Verification:
    """Verify the package; with a programme and a team, also against the team's pre-registered commitments."""
    committed = None
    if program is not None or team is not None:
        if program is None or team is None or store is None:
            raise InputError("checking commitments needs both --program and --team")
        with store.session(readonly=True) as session:
            committed = commitments.team_commitments(session, program, team=team, stage=stage)
    return verify(root, parents=parents, registry=registry, commitments=committed, progress=progress)
