"""Examples get a number within their task, the id the API shows.

The API used to show the examples table's primary key, one counter for all tenants: a
tenant could tell from the gaps how many texts others had stored meanwhile. Existing
examples keep the id clients have seen as their number (renumbering them would make a
saved id remove another example after the upgrade); examples added later get the next
number after their task's highest, which tells nothing about other tenants.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("examples") as batch:
        batch.add_column(sa.Column("number", sa.Integer(), nullable=True))
    op.execute("UPDATE examples SET number = id")  # ids are unique, so numbers are unique per task
    with op.batch_alter_table("examples") as batch:
        batch.alter_column("number", existing_type=sa.Integer(), nullable=False)
        batch.create_unique_constraint("uq_examples_task_id_number", ["task_id", "number"])


def downgrade() -> None:
    with op.batch_alter_table("examples") as batch:
        batch.drop_constraint("uq_examples_task_id_number", type_="unique")
        batch.drop_column("number")
