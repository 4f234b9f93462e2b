"""Initial schema: program versions, scores, gate results, decisions, appeals, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29 06:58:08.884657
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=64), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_log')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_log_hash')),
    sa.UniqueConstraint('prev_hash', name=op.f('uq_audit_log_prev_hash'))
    )
    op.create_table('gate_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('team_id', sa.String(length=64), nullable=False),
    sa.Column('gate_id', sa.String(length=64), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('link', sa.String(length=2048), nullable=True),
    sa.Column('example', sa.Boolean(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['supersedes_id'], ['gate_results.id'], name=op.f('fk_gate_results_supersedes_id_gate_results')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gate_results')),
    sa.UniqueConstraint('supersedes_id', name=op.f('uq_gate_results_supersedes_id'))
    )
    with op.batch_alter_table('gate_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gate_results_program_key'), ['program_key'], unique=False)

    op.create_table('program_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('source_path', sa.String(length=1024), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('loaded_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_program_versions')),
    sa.UniqueConstraint('program_key', 'sha256', name=op.f('uq_program_versions_program_key'))
    )
    with op.batch_alter_table('program_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_program_versions_program_key'), ['program_key'], unique=False)

    op.create_table('scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('team_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('rater', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('stderr', sa.Float(), nullable=True),
    sa.Column('run_id', sa.String(length=256), nullable=True),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('example', sa.Boolean(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['supersedes_id'], ['scores.id'], name=op.f('fk_scores_supersedes_id_scores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scores')),
    sa.UniqueConstraint('supersedes_id', name=op.f('uq_scores_supersedes_id'))
    )
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scores_program_key'), ['program_key'], unique=False)

    op.create_table('decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('program_version_id', sa.Integer(), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=128), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('appeal_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['program_version_id'], ['program_versions.id'], name=op.f('fk_decisions_program_version_id_program_versions')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['decisions.id'], name=op.f('fk_decisions_supersedes_id_decisions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisions')),
    sa.UniqueConstraint('supersedes_id', name=op.f('uq_decisions_supersedes_id'))
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decisions_program_key'), ['program_key'], unique=False)

    op.create_table('appeals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('decision_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.String(length=64), nullable=False),
    sa.Column('grounds', sa.Text(), nullable=False),
    sa.Column('filed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('filed_by', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], name=op.f('fk_appeals_decision_id_decisions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeals'))
    )
    # decisions and appeals reference each other: the second link is added once both tables exist
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_foreign_key(op.f('fk_decisions_appeal_id_appeals'), 'appeals', ['appeal_id'], ['id'])

    op.create_table('appeal_resolutions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_by', sa.String(length=128), nullable=False),
    sa.Column('new_decision_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeals.id'], name=op.f('fk_appeal_resolutions_appeal_id_appeals')),
    sa.ForeignKeyConstraint(['new_decision_id'], ['decisions.id'], name=op.f('fk_appeal_resolutions_new_decision_id_decisions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeal_resolutions')),
    sa.UniqueConstraint('appeal_id', name=op.f('uq_appeal_resolutions_appeal_id'))
    )


def downgrade() -> None:
    op.drop_table('appeal_resolutions')
    op.drop_table('appeals')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisions_program_key'))

    op.drop_table('decisions')
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scores_program_key'))

    op.drop_table('scores')
    with op.batch_alter_table('program_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_program_versions_program_key'))

    op.drop_table('program_versions')
    with op.batch_alter_table('gate_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gate_results_program_key'))

    op.drop_table('gate_results')
    op.drop_table('audit_log')
