"""Named SQL, grouped per domain area. Each function takes an asyncpg connection and runs
parameterised statements; none opens a transaction (the caller owns it)."""
