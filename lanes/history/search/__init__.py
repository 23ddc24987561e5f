"""Full-text search over the item index, plus Codex's own `thread/search`.

The local index covers every item the journal or a sync has seen: SQLite
FTS5 ranked by bm25, or a GIN tsvector index ranked by ts_rank on Postgres
(both created by migration 0002). `--unmanaged` also pages the app-server's
experimental `thread/search` for threads no lane manages; those matches are
per thread, with Codex's snippet.

One module per concern: `query` (the query language), `filters` (dates,
places, which items a search looks at), `dialects` (the SQL: FTS5, Postgres
full text, a substring fallback), `snippets`, `index` (ranked item matches),
`app_server` (Codex's `thread/search`), `run` (the op: scopes and cursors).
"""
