"""The few-shot intent classification service, in three parts.

- The server: :mod:`app.main` (the FastAPI app), ``app.routers`` (HTTP endpoints),
  ``app.services`` (task logic over the encoder in ``models``), ``app.repositories``
  and ``app.db`` (storage and migrations), :mod:`app.settings`.
- :mod:`app.cli`: the ``fewshot`` command line (serve, migrate, the offline tools, and
  the HTTP API through the client).
- :mod:`app.client`: the Python client, which imports nothing of the server.

This file imports nothing, so importing the client does not load the server.
"""
