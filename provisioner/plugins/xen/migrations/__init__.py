"""The Xen roll's Alembic branch (label `xen`, revisions x0001...): its tables, created and
upgraded by `provisioner.db.schema` beside the core's chain while the roll is enabled (the
roll's `migration_directories` hook names this directory)."""
