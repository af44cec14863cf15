"""Database layer: table definitions, engine/session set-up, migrations."""
