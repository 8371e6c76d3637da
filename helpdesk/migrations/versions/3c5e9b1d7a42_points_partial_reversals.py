"""Loyalty: partial reversals of an earning (partly refunded orders).

Revision ID: 3c5e9b1d7a42
Revises: fd4aa0c699cb
Create Date: 2026-11-23 12:00:00.000000

An earning may now have several reversals, so ``points_entries.reverses_id`` loses
its unique constraint and gets a plain index instead; ``order_amount`` records what
an order's points were earned on, so a refund takes back the same share of them.

On SQLite the constraint goes by batch mode, which rebuilds ``points_entries``. Only
the table itself refers to it (``reverses_id``, no ON DELETE), so nothing cascades.
Downgrading brings the unique constraint back and fails if an earning has been
reversed in parts.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "3c5e9b1d7a42"
down_revision = "fd4aa0c699cb"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("points_entries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("order_amount", sa.Numeric(precision=12, scale=2), nullable=True)
        )
        batch_op.drop_constraint("uq_points_entries_reverses_id", type_="unique")
        batch_op.create_index("ix_points_entries_reverses_id", ["reverses_id"], unique=False)


def downgrade():
    with op.batch_alter_table("points_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_points_entries_reverses_id")
        batch_op.create_unique_constraint("uq_points_entries_reverses_id", ["reverses_id"])
        batch_op.drop_column("order_amount")
