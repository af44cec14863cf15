"""The ``fewshot`` command line: one entry point for the server, the offline tools and the HTTP API.

- :mod:`app.cli.commands`: the parser, ``fewshot serve`` and ``fewshot migrate``;
- :mod:`app.cli.meta`: ``fewshot meta-train``, ``evaluate`` and ``rebase-checkpoint``
  (torch and the models are imported only when one of them runs);
- :mod:`app.cli.tasks`: ``fewshot tasks``, ``tenants`` and ``health``, which talk to a
  running server through :mod:`app.client`; :mod:`app.cli.inputs` reads their files.

Building the parser imports only the standard library, so every command starts fast.
``python -m app.cli`` runs the same command (torchrun uses that form).
"""

from __future__ import annotations

from app.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
