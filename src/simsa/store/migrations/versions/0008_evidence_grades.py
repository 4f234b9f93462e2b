"""Evidence grades: every score and gate result says how strong its evidence is (cryptographic, statistical,
declared, heuristic), and a gate result accepted below the gate's bar keeps the admin's reason.

Rows recorded before this revision have no grade (NULL): readers take the grade their source implies.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scores') as batch:
        batch.add_column(sa.Column('grade', sa.String(length=16), nullable=True))
    with op.batch_alter_table('gate_results') as batch:
        batch.add_column(sa.Column('grade', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('override_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('gate_results') as batch:
        batch.drop_column('override_reason')
        batch.drop_column('grade')
    with op.batch_alter_table('scores') as batch:
        batch.drop_column('grade')
