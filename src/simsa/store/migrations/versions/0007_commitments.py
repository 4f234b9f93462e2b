"""Pre-registered commitments: the digests of what a team commits to at a stage's start (insert-only, chained per
key like scores: an amendment supersedes, with its reason).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 05:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('commitments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('team_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('files', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['supersedes_id'], ['commitments.id'], name=op.f('fk_commitments_supersedes_id_commitments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commitments')),
    sa.UniqueConstraint('supersedes_id', name=op.f('uq_commitments_supersedes_id'))
    )
    with op.batch_alter_table('commitments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commitments_program_key'), ['program_key'], unique=False)
        batch_op.create_index('uq_commitments_first_per_key', ['program_key', 'stage_id', 'team_id', 'kind', 'label'], unique=True, sqlite_where=sa.text('supersedes_id IS NULL'), postgresql_where=sa.text('supersedes_id IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('commitments', schema=None) as batch_op:
        batch_op.drop_index('uq_commitments_first_per_key', sqlite_where=sa.text('supersedes_id IS NULL'), postgresql_where=sa.text('supersedes_id IS NULL'))
        batch_op.drop_index(batch_op.f('ix_commitments_program_key'))

    op.drop_table('commitments')
