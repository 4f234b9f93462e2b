"""One current row per key enforced by the database; voided rows and import batches; UTC everywhere.

Partial unique indexes forbid two first rows for one score key, gate key or stage (with the existing unique
`supersedes_id`, each key's rows form one line, so exactly one is current). Scores and gate results gain `voided`
and `batch_id` (scores also `reason`); a voided row carries no value, so `scores.value` and `gate_results.passed`
become nullable.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 19:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

NO_PREDECESSOR = sa.text("supersedes_id IS NULL")
ROOTS = {
    "scores": ("uq_scores_first_per_key", ["program_key", "stage_id", "team_id", "source", "rater"]),
    "gate_results": ("uq_gate_results_first_per_key", ["program_key", "stage_id", "team_id", "gate_id"]),
    "decisions": ("uq_decisions_first_per_stage", ["program_key", "stage_id"]),
}


def _refuse_forks() -> None:
    """Rows written by concurrent writers before this migration may already fork; say which, change nothing."""
    conn = op.get_bind()
    for table, (_, cols) in ROOTS.items():
        keys = ", ".join(cols)
        dup = conn.execute(sa.text(f"SELECT {keys}, COUNT(*) FROM {table} WHERE supersedes_id IS NULL "
                                   f"GROUP BY {keys} HAVING COUNT(*) > 1")).first()
        if dup is not None:
            raise RuntimeError(f"cannot upgrade: {table} has {dup[-1]} first rows for one key {tuple(dup[:-1])} "
                               "(written concurrently by an older simsa); supersede the extra rows first")


def upgrade() -> None:
    _refuse_forks()
    with op.batch_alter_table('scores') as batch:
        batch.add_column(sa.Column('voided', sa.Boolean(), nullable=False, server_default=sa.text('false')))
        batch.add_column(sa.Column('reason', sa.Text(), nullable=True))
        batch.add_column(sa.Column('batch_id', sa.String(length=64), nullable=True))
        batch.alter_column('value', existing_type=sa.Float(), nullable=True)
        batch.create_index('ix_scores_batch_id', ['batch_id'])
        batch.create_index('ix_scores_key', ROOTS['scores'][1])
    with op.batch_alter_table('gate_results') as batch:
        batch.add_column(sa.Column('voided', sa.Boolean(), nullable=False, server_default=sa.text('false')))
        batch.add_column(sa.Column('batch_id', sa.String(length=64), nullable=True))
        batch.alter_column('passed', existing_type=sa.Boolean(), nullable=True)
        batch.create_index('ix_gate_results_batch_id', ['batch_id'])
    for table, (name, cols) in ROOTS.items():
        op.create_index(name, table, cols, unique=True, sqlite_where=NO_PREDECESSOR, postgresql_where=NO_PREDECESSOR)


def downgrade() -> None:
    for table, (name, _) in ROOTS.items():
        op.drop_index(name, table_name=table)
    with op.batch_alter_table('gate_results') as batch:
        batch.drop_index('ix_gate_results_batch_id')
        batch.drop_column('batch_id')
        batch.drop_column('voided')
    with op.batch_alter_table('scores') as batch:
        batch.drop_index('ix_scores_key')
        batch.drop_index('ix_scores_batch_id')
        batch.drop_column('batch_id')
        batch.drop_column('reason')
        batch.drop_column('voided')
