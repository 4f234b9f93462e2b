"""Evidence documents: the files records rest on (a lineage comparison behind an originality gate), stored once
by sha256 and linked from the gate result, so published evidence can be read and re-hashed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 00:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('evidence_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('media_type', sa.String(length=64), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stored_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evidence_documents')),
    sa.UniqueConstraint('sha256', name=op.f('uq_evidence_documents_sha256'))
    )
    with op.batch_alter_table('gate_results') as batch:
        batch.add_column(sa.Column('document_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_gate_results_document_id_evidence_documents'), 'evidence_documents',
                                 ['document_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('gate_results') as batch:
        batch.drop_constraint(op.f('fk_gate_results_document_id_evidence_documents'), type_='foreignkey')
        batch.drop_column('document_id')
    op.drop_table('evidence_documents')
