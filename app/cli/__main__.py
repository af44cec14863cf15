"""``python -m app.cli``: the ``fewshot`` command without its installed script (torchrun runs it so)."""

from __future__ import annotations

import sys

from app.cli.commands import main

sys.exit(main())
