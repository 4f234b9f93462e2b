"""Ecosystem signals: the hub's raw answers, stored once by sha256, and the snapshots parsed from them (insert-only).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 09:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ecosystem_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('query', sa.String(length=128), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('library_version', sa.String(length=128), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ecosystem_answers')),
    sa.UniqueConstraint('sha256', name=op.f('uq_ecosystem_answers_sha256'))
    )
    op.create_table('ecosystem_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('endpoint', sa.String(length=1024), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('taken_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ecosystem_snapshots'))
    )
    with op.batch_alter_table('ecosystem_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ecosystem_snapshots_program_key'), ['program_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ecosystem_snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ecosystem_snapshots_program_key'))

    op.drop_table('ecosystem_snapshots')
    op.drop_table('ecosystem_answers')
