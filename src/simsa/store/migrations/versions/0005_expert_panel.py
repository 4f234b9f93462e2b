"""The expert panel: submitted documents (content-addressed blobs), experts' declarations, assignments, blind
codes, locked reviews, discussion threads and the panel's steps. All insert-only domain tables.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('panel_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('team_id', sa.String(length=64), nullable=False),
    sa.Column('expert', sa.String(length=64), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assigned_by', sa.String(length=128), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('removed', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['supersedes_id'], ['panel_assignments.id'], name=op.f('fk_panel_assignments_supersedes_id_panel_assignments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_panel_assignments')),
    sa.UniqueConstraint('supersedes_id', name=op.f('uq_panel_assignments_supersedes_id'))
    )
    with op.batch_alter_table('panel_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_panel_assignments_program_key'), ['program_key'], unique=False)
        batch_op.create_index('uq_panel_assignments_first_per_key', ['program_key', 'stage_id', 'team_id', 'expert'], unique=True, sqlite_where=sa.text('supersedes_id IS NULL'), postgresql_where=sa.text('supersedes_id IS NULL'))

    op.create_table('panel_blobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('media_type', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stored_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_panel_blobs')),
    sa.UniqueConstraint('sha256', name=op.f('uq_panel_blobs_sha256'))
    )
    op.create_table('panel_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('team_id', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_panel_codes')),
    sa.UniqueConstraint('program_key', 'stage_id', 'team_id', name=op.f('uq_panel_codes_program_key'))
    )
    op.create_table('panel_comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('team_id', sa.String(length=64), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('hides_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['hides_id'], ['panel_comments.id'], name=op.f('fk_panel_comments_hides_id_panel_comments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_panel_comments')),
    sa.UniqueConstraint('hides_id', name=op.f('uq_panel_comments_hides_id'))
    )
    with op.batch_alter_table('panel_comments', schema=None) as batch_op:
        batch_op.create_index('ix_panel_comments_thread', ['program_key', 'stage_id', 'team_id'], unique=False)

    op.create_table('panel_declarations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('expert', sa.String(length=64), nullable=False),
    sa.Column('affiliations', sa.Text(), nullable=False),
    sa.Column('relations', sa.Text(), nullable=False),
    sa.Column('conflicts', sa.Text(), nullable=False),
    sa.Column('declared_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_panel_declarations'))
    )
    with op.batch_alter_table('panel_declarations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_panel_declarations_expert'), ['expert'], unique=False)

    op.create_table('panel_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_panel_events'))
    )
    with op.batch_alter_table('panel_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_panel_events_program_key'), ['program_key'], unique=False)

    op.create_table('panel_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('round', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('expert', sa.String(length=64), nullable=False),
    sa.Column('rubric_sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_panel_reviews')),
    sa.UniqueConstraint('program_key', 'stage_id', 'round', 'subject', 'expert', name=op.f('uq_panel_reviews_program_key'))
    )
    with op.batch_alter_table('panel_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_panel_reviews_program_key'), ['program_key'], unique=False)

    op.create_table('panel_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_key', sa.String(length=64), nullable=False),
    sa.Column('stage_id', sa.String(length=64), nullable=False),
    sa.Column('team_id', sa.String(length=64), nullable=True),
    sa.Column('anchor_id', sa.String(length=64), nullable=True),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('filename', sa.String(length=256), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=True),
    sa.Column('blob_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uploaded_by', sa.String(length=128), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('withdrawn', sa.Boolean(), nullable=False),
    sa.CheckConstraint('(team_id IS NULL) <> (anchor_id IS NULL)', name=op.f('ck_panel_documents_owner')),
    sa.ForeignKeyConstraint(['blob_id'], ['panel_blobs.id'], name=op.f('fk_panel_documents_blob_id_panel_blobs')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['panel_documents.id'], name=op.f('fk_panel_documents_supersedes_id_panel_documents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_panel_documents')),
    sa.UniqueConstraint('supersedes_id', name=op.f('uq_panel_documents_supersedes_id'))
    )
    with op.batch_alter_table('panel_documents', schema=None) as batch_op:
        batch_op.create_index('ix_panel_documents_stage', ['program_key', 'stage_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('panel_documents', schema=None) as batch_op:
        batch_op.drop_index('ix_panel_documents_stage')

    op.drop_table('panel_documents')
    with op.batch_alter_table('panel_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_panel_reviews_program_key'))

    op.drop_table('panel_reviews')
    with op.batch_alter_table('panel_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_panel_events_program_key'))

    op.drop_table('panel_events')
    with op.batch_alter_table('panel_declarations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_panel_declarations_expert'))

    op.drop_table('panel_declarations')
    with op.batch_alter_table('panel_comments', schema=None) as batch_op:
        batch_op.drop_index('ix_panel_comments_thread')

    op.drop_table('panel_comments')
    op.drop_table('panel_codes')
    op.drop_table('panel_blobs')
    with op.batch_alter_table('panel_assignments', schema=None) as batch_op:
        batch_op.drop_index('uq_panel_assignments_first_per_key', sqlite_where=sa.text('supersedes_id IS NULL'), postgresql_where=sa.text('supersedes_id IS NULL'))
        batch_op.drop_index(batch_op.f('ix_panel_assignments_program_key'))

    op.drop_table('panel_assignments')
