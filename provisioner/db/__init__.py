"""The cluster database: typed SQLAlchemy models, engine and session factories, migrations,
and a light plain-SQL reader for the hot read paths (see `reader`)."""
