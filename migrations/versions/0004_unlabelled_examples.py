"""Unlabelled texts on a task: examples without a label that refine the label prototypes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("examples") as batch:
        batch.add_column(sa.Column("unlabelled", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("adapter_versions") as batch:
        batch.add_column(sa.Column("num_unlabelled", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    # Versions that hold unlabelled texts would read them back as in-scope examples
    # labelled "": drop the texts from every version's example set first.
    bind = op.get_bind()
    dropped = {row[0] for row in bind.execute(sa.text("SELECT id FROM examples WHERE unlabelled"))}
    if dropped:
        for row_id, ids in bind.execute(sa.text("SELECT id, example_ids FROM adapter_versions")).fetchall():
            kept = [i for i in (json.loads(ids) if isinstance(ids, str) else ids or []) if i not in dropped]
            bind.execute(sa.text("UPDATE adapter_versions SET example_ids = :ids WHERE id = :id"),
                         {"ids": json.dumps(kept), "id": row_id})
        bind.execute(sa.text("DELETE FROM examples WHERE unlabelled"))
    with op.batch_alter_table("adapter_versions") as batch:
        batch.drop_column("num_unlabelled")
    with op.batch_alter_table("examples") as batch:
        batch.drop_column("unlabelled")
