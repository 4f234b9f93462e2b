"""The user-review arena: frozen entrant segments, blind battles, their turns (prompts and answers as bytes),
votes (unique per battle), ratings and the secretariat's exclusions. All insert-only domain tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:01:20
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('arena_segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('manifest', sa.Text(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arena_segments')),
    sa.UniqueConstraint('program_key', 'stage_id', 'number', name=op.f('uq_arena_segments_program_key'))
    )
    with op.batch_alter_table('arena_segments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arena_segments_program_key'), ['program_key'], unique=False)

    op.create_table('arena_battles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('rater', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('left_team', sa.String(length=64), nullable=False),
    sa.Column('right_team', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('gold_id', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['segment_id'], ['arena_segments.id'], name=op.f('fk_arena_battles_segment_id_arena_segments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arena_battles')),
    sa.UniqueConstraint('token', name=op.f('uq_arena_battles_token'))
    )
    with op.batch_alter_table('arena_battles', schema=None) as batch_op:
        batch_op.create_index('ix_arena_battles_rater', ['rater', 'started_at'], unique=False)
        batch_op.create_index('ix_arena_battles_stage', ['program_key', 'stage_id'], unique=False)

    op.create_table('arena_ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('battle_id', sa.Integer(), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('usefulness', sa.Integer(), nullable=True),
    sa.Column('cost_efficiency', sa.Integer(), nullable=True),
    sa.Column('rated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['battle_id'], ['arena_battles.id'], name=op.f('fk_arena_ratings_battle_id_arena_battles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arena_ratings')),
    sa.UniqueConstraint('battle_id', 'side', name=op.f('uq_arena_ratings_battle_id'))
    )
    with op.batch_alter_table('arena_ratings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arena_ratings_program_key'), ['program_key'], unique=False)

    op.create_table('arena_turns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('battle_id', sa.Integer(), nullable=False),
    sa.Column('turn', sa.Integer(), nullable=False),
    sa.Column('prompt_source', sa.String(length=80), nullable=False),
    sa.Column('prompt', sa.LargeBinary(), nullable=False),
    sa.Column('prompt_key', sa.Text(), nullable=False),
    sa.Column('answer_left', sa.LargeBinary(), nullable=False),
    sa.Column('answer_right', sa.LargeBinary(), nullable=False),
    sa.Column('stats', sa.Text(), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['battle_id'], ['arena_battles.id'], name=op.f('fk_arena_turns_battle_id_arena_battles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arena_turns')),
    sa.UniqueConstraint('battle_id', 'turn', name=op.f('uq_arena_turns_battle_id'))
    )
    with op.batch_alter_table('arena_turns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arena_turns_program_key'), ['program_key'], unique=False)

    op.create_table('arena_votes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('battle_id', sa.Integer(), nullable=False),
    sa.Column('rater', sa.String(length=64), nullable=False),
    sa.Column('choice', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('dwell_seconds', sa.Float(), nullable=False),
    sa.Column('voted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['battle_id'], ['arena_battles.id'], name=op.f('fk_arena_votes_battle_id_arena_battles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arena_votes')),
    sa.UniqueConstraint('battle_id', name=op.f('uq_arena_votes_battle_id'))
    )
    with op.batch_alter_table('arena_votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arena_votes_program_key'), ['program_key'], unique=False)

    op.create_table('arena_exclusions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('rater', sa.String(length=64), nullable=True),
    sa.Column('vote_id', sa.Integer(), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['vote_id'], ['arena_votes.id'], name=op.f('fk_arena_exclusions_vote_id_arena_votes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arena_exclusions'))
    )
    with op.batch_alter_table('arena_exclusions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arena_exclusions_program_key'), ['program_key'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('arena_exclusions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arena_exclusions_program_key'))

    op.drop_table('arena_exclusions')
    with op.batch_alter_table('arena_votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arena_votes_program_key'))

    op.drop_table('arena_votes')
    with op.batch_alter_table('arena_turns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arena_turns_program_key'))

    op.drop_table('arena_turns')
    with op.batch_alter_table('arena_ratings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arena_ratings_program_key'))

    op.drop_table('arena_ratings')
    with op.batch_alter_table('arena_battles', schema=None) as batch_op:
        batch_op.drop_index('ix_arena_battles_stage')
        batch_op.drop_index('ix_arena_battles_rater')

    op.drop_table('arena_battles')
    with op.batch_alter_table('arena_segments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arena_segments_program_key'))

    op.drop_table('arena_segments')
