"""Clear out-of-scope threshold overrides set on the old cosine scale.

Adapter format 3 scores in-scope-ness by a relative Mahalanobis score (unbounded, typical
in-scope texts near 0) instead of the cosine to the nearest label (-1..1). An override
such as 0.5 would now reject nearly every text, so overrides set before this revision are
cleared: those tasks fall back to their calibrated threshold (re-computed when their
adapters are rebuilt on first use) until their owners set a new override.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE tasks SET oos_threshold_override = NULL"))


def downgrade() -> None:
    pass  # the cleared values are gone; the schema is unchanged
