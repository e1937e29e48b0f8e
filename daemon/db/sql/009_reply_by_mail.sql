-- Reply by mail (SPEC §4): the keys that sign reply addresses, and the Message-ID of a reply
-- kept on the note it became.
--
-- The keys live here, not in a file of one machine, so that every instance signs and verifies
-- every reply address. `portald admin inbound rotate-key` makes a new current key and gives
-- the old one a `retires_at`: it verifies until then, so mails already sent can still be
-- answered during the grace period.

CREATE TABLE reply_keys (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    secret     bytea NOT NULL CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- NULL for the current key (the one that signs); a rotated key verifies until then
    retires_at timestamptz
);
CREATE UNIQUE INDEX reply_keys_one_current ON reply_keys ((true)) WHERE retires_at IS NULL;

-- The first key. gen_random_uuid() draws on the server's strong random source (PostgreSQL 13+);
-- two of them give 244 random bits.
INSERT INTO reply_keys (secret)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- The Message-ID of the reply a note came from: later mails about the note refer to it (the
-- thread stays whole), and a reply delivered twice (an MTA retrying after a lost "250") is
-- stored once.
ALTER TABLE history_notes ADD COLUMN message_id text CHECK (length(message_id) <= 998);
CREATE UNIQUE INDEX history_notes_message_id ON history_notes (ticket_id, message_id)
    WHERE message_id IS NOT NULL;
