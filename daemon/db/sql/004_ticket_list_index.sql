-- A customer's ticket list reads their account's tickets newest first. An account's tickets
-- are spread over the whole id range (many accounts raise tickets at once), so walking the
-- primary key backwards skips thousands of other accounts' rows per page; this index reads
-- only the account's own.
CREATE INDEX tickets_account_id ON tickets (account_id, id DESC);
