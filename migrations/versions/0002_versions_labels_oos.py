"""Immutable versions with example sets, label descriptions, calibration, out-of-scope examples.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("oos_threshold_override", sa.Float(), nullable=True))
    with op.batch_alter_table("examples") as batch:
        batch.add_column(sa.Column("out_of_scope", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("adapter_versions") as batch:
        batch.add_column(sa.Column("example_ids", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("label_descriptions", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("temperature", sa.Float(), nullable=True))
        batch.add_column(sa.Column("oos_threshold", sa.Float(), nullable=True))
        batch.add_column(sa.Column("change", sa.String(32), nullable=True))
        batch.add_column(sa.Column("parent_version", sa.Integer(), nullable=True))
    # Versions made before this revision: their example set is every example added up to them.
    bind = op.get_bind()
    versions = bind.execute(sa.text("SELECT id, task_id, version FROM adapter_versions")).fetchall()
    for row_id, task_id, version in versions:
        ids = [r[0] for r in bind.execute(
            sa.text("SELECT id FROM examples WHERE task_id = :t AND version_added <= :v ORDER BY id"),
            {"t": task_id, "v": version},
        )]
        bind.execute(sa.text("UPDATE adapter_versions SET example_ids = :ids WHERE id = :id"),
                     {"ids": json.dumps(ids), "id": row_id})


def downgrade() -> None:
    with op.batch_alter_table("adapter_versions") as batch:
        for column in ("parent_version", "change", "oos_threshold", "temperature", "label_descriptions", "example_ids"):
            batch.drop_column(column)
    with op.batch_alter_table("examples") as batch:
        batch.drop_column("out_of_scope")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("oos_threshold_override")
