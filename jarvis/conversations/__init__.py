"""Saved conversations of the web app: records.py (what a conversation, a turn and a file are),
store.py (the SQLite database: schema, transactional writes, queries), location.py (where the
database lives: config, environment, the user's data directory, a Space's /data)."""
