-- Mail events, produced in the database in the same transaction as the change they tell of,
-- so that any program writing the database produces its mail.
--
-- Triggers only record *what happened* (one row per event). Who receives it is decided by the
-- daemon's fan-out (daemon/fanout.py), which applies the one access rule of daemon/scope.py
-- and turns each event into outbox rows, one per recipient, in one transaction.
--
-- Who made a change: rows that carry an author (notes, charges, filed emails, a ticket's
-- creator) say it themselves; for changes of a ticket row (assignment, status) a writer may
-- name the actor for its transaction with
--     SELECT set_config('portald.actor_employee_id', '42', true);   -- or portald.actor_webuser_id
-- Without it the actor is unknown and nobody is left out as "the author".
--
-- The trigger functions run as their owner (SECURITY DEFINER, fixed search_path): a writer
-- that may change tickets produces its mail even without rights on mail_events itself.

CREATE TABLE mail_events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event             text NOT NULL CHECK (event IN ('assigned', 'created', 'note', 'status', 'closed',
                                                     'email', 'charge', 'reminder', 'digest')),
    ticket_id         bigint REFERENCES tickets ON DELETE CASCADE,
    -- the child row that caused the event (note, charge, email id)
    subject_id        bigint,
    -- reminder and digest events name their one recipient
    employee_id       bigint REFERENCES employees ON DELETE CASCADE,
    actor_employee_id bigint,
    actor_webuser_id  bigint,
    -- e.g. {"from": "open", "to": "waiting"} or {"from": 3, "to": 7} (assignee ids)
    payload           jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    fanned_out        boolean NOT NULL DEFAULT false,
    -- set when the fan-out had to give up on this event (a bug or odd data), so it blocks
    -- no other mail; the daemon logs it as an error too
    error             text,
    CHECK (ticket_id IS NOT NULL OR event = 'digest')
);
CREATE INDEX mail_events_pending ON mail_events (id) WHERE NOT fanned_out;
CREATE INDEX mail_events_ticket ON mail_events (ticket_id, event, created_at) WHERE ticket_id IS NOT NULL;
CREATE INDEX mail_events_done ON mail_events (created_at) WHERE fanned_out;

-- The actor a writer declared for its transaction (see above); NULL when none or not a number.
CREATE FUNCTION mail_actor(kind text) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE raw text := current_setting('portald.actor_' || kind || '_id', true);
BEGIN
    IF raw ~ '^[0-9]{1,18}$' THEN
        RETURN raw::bigint;
    END IF;
    RETURN NULL;
END $$;

-- One wake-up per statement, whatever the number of rows: identical notifications within a
-- transaction are folded into one by PostgreSQL, and NOTIFY is only a hint (the daemon polls).
CREATE FUNCTION mail_events_notify() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_notify('portald_mail', 'events');
    RETURN NULL;
END $$;
CREATE TRIGGER mail_events_notify AFTER INSERT ON mail_events
    FOR EACH STATEMENT EXECUTE FUNCTION mail_events_notify();

-- Mail becomes due: new outbox rows, or rows put back in the queue (admin retry).
CREATE FUNCTION outbox_notify_insert() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE status = 'queued') THEN
        PERFORM pg_notify('portald_mail', 'outbox');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify_insert AFTER INSERT ON outbox REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify_insert();

CREATE FUNCTION outbox_notify_requeue() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o USING (id)
                WHERE n.status = 'queued' AND o.status <> 'queued') THEN
        PERFORM pg_notify('portald_mail', 'outbox');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify_requeue AFTER UPDATE ON outbox
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify_requeue();

-- Tickets --------------------------------------------------------------------------------------
-- Statement-level triggers with transition tables: a bulk INSERT or UPDATE of many tickets
-- costs one INSERT … SELECT, not one trigger call per row.

CREATE FUNCTION mail_events_tickets_insert() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO mail_events (event, ticket_id, actor_employee_id, actor_webuser_id, payload)
    SELECT e.event, e.ticket_id, e.actor_employee_id, e.actor_webuser_id, e.payload
      FROM (SELECT 1 AS ord, 'created' AS event, n.id AS ticket_id,
                   coalesce(n.created_by_employee, mail_actor('employee')) AS actor_employee_id,
                   coalesce(n.created_by_webuser, mail_actor('webuser')) AS actor_webuser_id,
                   '{}'::jsonb AS payload
              FROM new_rows n
            UNION ALL
            SELECT 2, 'assigned', n.id,
                   coalesce(mail_actor('employee'), n.created_by_employee),
                   coalesce(mail_actor('webuser'), n.created_by_webuser),
                   jsonb_build_object('from', NULL, 'to', n.assigned_to)
              FROM new_rows n
             WHERE n.assigned_to IS NOT NULL) e
     ORDER BY e.ticket_id, e.ord;
    RETURN NULL;
END $$;
CREATE TRIGGER mail_events_tickets_insert AFTER INSERT ON tickets REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mail_events_tickets_insert();

CREATE FUNCTION mail_events_tickets_update() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO mail_events (event, ticket_id, actor_employee_id, actor_webuser_id, payload)
    SELECT e.event, e.ticket_id, mail_actor('employee'), mail_actor('webuser'), e.payload
      FROM (SELECT 1 AS ord, 'assigned' AS event, n.id AS ticket_id,
                   jsonb_build_object('from', o.assigned_to, 'to', n.assigned_to) AS payload
              FROM new_rows n JOIN old_rows o USING (id)
             WHERE n.assigned_to IS DISTINCT FROM o.assigned_to AND n.assigned_to IS NOT NULL
            UNION ALL
            SELECT 2, CASE WHEN n.status = 'closed' THEN 'closed' ELSE 'status' END, n.id,
                   jsonb_build_object('from', o.status, 'to', n.status)
              FROM new_rows n JOIN old_rows o USING (id)
             WHERE n.status IS DISTINCT FROM o.status) e
     ORDER BY e.ticket_id, e.ord;
    RETURN NULL;
END $$;
CREATE TRIGGER mail_events_tickets_update AFTER UPDATE ON tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mail_events_tickets_update();

-- "Untouched for N hours" (the reminder) needs updated_at to move with every change, whoever
-- makes it: any change of the row itself, and (below) anything added under the ticket.
CREATE FUNCTION tickets_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at
       AND (to_jsonb(NEW) - 'updated_at') IS DISTINCT FROM (to_jsonb(OLD) - 'updated_at') THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tickets_touch BEFORE UPDATE ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_touch();

CREATE FUNCTION tickets_touch_from_children() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    -- `updated_at < now()` skips tickets already touched in this transaction (now() is the
    -- transaction's start), e.g. a ticket created together with its first note.
    UPDATE tickets t SET updated_at = now()
     WHERE t.id IN (SELECT n.ticket_id FROM new_rows n WHERE n.ticket_id IS NOT NULL)
       AND t.updated_at < now();
    RETURN NULL;
END $$;

-- Children of tickets ------------------------------------------------------------------------

CREATE FUNCTION mail_events_notes() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO mail_events (event, ticket_id, subject_id, actor_employee_id, actor_webuser_id)
    SELECT 'note', n.ticket_id, n.id, n.author_employee_id, n.author_webuser_id
      FROM new_rows n ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER mail_events_notes AFTER INSERT ON history_notes REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mail_events_notes();
CREATE TRIGGER history_notes_touch_ticket AFTER INSERT ON history_notes REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tickets_touch_from_children();

CREATE FUNCTION mail_events_charges() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    -- contract charges (no ticket) are not ticket events
    INSERT INTO mail_events (event, ticket_id, subject_id, actor_employee_id)
    SELECT 'charge', n.ticket_id, n.id, n.employee_id
      FROM new_rows n WHERE n.ticket_id IS NOT NULL ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER mail_events_charges AFTER INSERT ON charges REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mail_events_charges();
CREATE TRIGGER charges_touch_ticket AFTER INSERT ON charges REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tickets_touch_from_children();

CREATE FUNCTION mail_events_emails() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    -- Only public emails are announced (SPEC §4). A filed mail that was itself automatic
    -- (Auto-Submitted other than "no", RFC 3834) is never answered by mail: no loops.
    INSERT INTO mail_events (event, ticket_id, subject_id, actor_employee_id)
    SELECT 'email', n.ticket_id, n.id, n.filed_by
      FROM new_rows n
     WHERE n.is_public AND lower(btrim(n.auto_submitted)) IN ('', 'no')
     ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER mail_events_emails AFTER INSERT ON ticket_emails REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mail_events_emails();
CREATE TRIGGER ticket_emails_touch_ticket AFTER INSERT ON ticket_emails REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tickets_touch_from_children();
CREATE TRIGGER attachments_touch_ticket AFTER INSERT ON attachments REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tickets_touch_from_children();
