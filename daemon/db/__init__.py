"""The database: where it is (a configured server or the embedded one), its pool, and the
numbered migrations in sql/."""
