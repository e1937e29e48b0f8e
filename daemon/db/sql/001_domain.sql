-- The whole domain of the portal: accounts and their data, tickets and their children,
-- customer and employee privileges, licenses, sessions, audit and the mail outbox.

CREATE TABLE accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    contact_name text NOT NULL DEFAULT '',
    phone       text NOT NULL DEFAULT '',
    email       text NOT NULL DEFAULT '',
    address     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Customer privilege groups: one column per identifier of the specification, named alike.
CREATE TABLE customer_groups (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              text NOT NULL UNIQUE CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    is_system         boolean NOT NULL DEFAULT false,
    is_default        boolean NOT NULL DEFAULT false,
    tickets_add       boolean NOT NULL DEFAULT false,
    tickets_edit      boolean NOT NULL DEFAULT false,
    priority          text NOT NULL DEFAULT 'none' CHECK (priority IN ('none', 'view', 'edit')),
    ticket_asset      text NOT NULL DEFAULT 'none' CHECK (ticket_asset IN ('none', 'view', 'edit')),
    charges           boolean NOT NULL DEFAULT false,
    assets            boolean NOT NULL DEFAULT false,
    asset_config_note boolean NOT NULL DEFAULT false,
    history_notes     boolean NOT NULL DEFAULT false,
    contracts         boolean NOT NULL DEFAULT false,
    public_emails     boolean NOT NULL DEFAULT false,
    documents         boolean NOT NULL DEFAULT false,
    upload_files      boolean NOT NULL DEFAULT false,
    kb                text NOT NULL DEFAULT 'none' CHECK (kb IN ('none', 'view', 'download')),
    quotes            text NOT NULL DEFAULT 'none' CHECK (quotes IN ('none', 'view', 'accept')),
    change_password   boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now()
);
-- At most one default here; "at least one" is checked at commit by a constraint trigger below.
CREATE UNIQUE INDEX customer_groups_one_default ON customer_groups ((true)) WHERE is_default;

INSERT INTO customer_groups (name, is_system, is_default, tickets_add, tickets_edit, priority,
    ticket_asset, charges, assets, asset_config_note, history_notes, contracts, public_emails,
    documents, upload_files, kb, quotes, change_password) VALUES
  ('Full',    true, true,  true, true,  'edit', 'edit', true,  true,  true,  true,  true,  true,
    true,  true,  'download', 'accept', true),
  ('Partial', true, false, true, true,  'view', 'view', false, true,  false, true,  true,  true,
    true,  true,  'download', 'view',   true),
  ('Limited', true, false, true, false, 'none', 'none', false, false, false, false, false, false,
    false, false, 'view',     'none',   true);

CREATE FUNCTION customer_groups_protect_system() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.is_system THEN
            RAISE EXCEPTION 'customer privilege group "%" is a system group and cannot be deleted', OLD.name
                USING ERRCODE = 'P0001', HINT = 'create a custom group instead';
        END IF;
        RETURN OLD;
    END IF;
    -- Choosing a system group as the default is allowed; nothing else about it may change.
    IF OLD.is_system AND (to_jsonb(NEW) - 'is_default') IS DISTINCT FROM (to_jsonb(OLD) - 'is_default') THEN
        RAISE EXCEPTION 'customer privilege group "%" is a system group and cannot be modified', OLD.name
            USING ERRCODE = 'P0001', HINT = 'copy it into a custom group and change that';
    END IF;
    IF NOT OLD.is_system AND NEW.is_system THEN
        RAISE EXCEPTION 'a custom group cannot be made a system group' USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER customer_groups_protect_system BEFORE UPDATE OR DELETE ON customer_groups
    FOR EACH ROW EXECUTE FUNCTION customer_groups_protect_system();

CREATE FUNCTION customer_groups_insert_not_system() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_system THEN
        RAISE EXCEPTION 'system groups exist from the first start; new groups are custom' USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER customer_groups_insert_not_system BEFORE INSERT ON customer_groups
    FOR EACH ROW EXECUTE FUNCTION customer_groups_insert_not_system();

CREATE FUNCTION customer_groups_check_one_default() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM customer_groups WHERE is_default) <> 1 THEN
        RAISE EXCEPTION 'exactly one customer privilege group must be the default' USING ERRCODE = 'P0001';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER customer_groups_check_one_default
    AFTER INSERT OR UPDATE OF is_default OR DELETE ON customer_groups
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION customer_groups_check_one_default();

CREATE TABLE customer_web_users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    group_id      bigint NOT NULL REFERENCES customer_groups ON DELETE RESTRICT,
    username      text NOT NULL CHECK (username ~ '^[A-Za-z0-9._@+-]{1,100}$'),
    full_name     text NOT NULL DEFAULT '',
    email         text NOT NULL DEFAULT '',
    password_hash text,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX customer_web_users_username ON customer_web_users (lower(username));
CREATE INDEX customer_web_users_account ON customer_web_users (account_id);
CREATE INDEX customer_web_users_group ON customer_web_users (group_id);

-- Employee privilege groups: the rights of SPEC §3 as columns.
CREATE TABLE employee_groups (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text NOT NULL UNIQUE CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    is_system          boolean NOT NULL DEFAULT false,
    ticket_scope       text NOT NULL DEFAULT 'own' CHECK (ticket_scope IN ('own', 'all')),
    see_others         text NOT NULL DEFAULT 'own' CHECK (see_others IN ('own', 'all')),
    add_notes          boolean NOT NULL DEFAULT true,
    log_charges        boolean NOT NULL DEFAULT true,
    upload_attachments boolean NOT NULL DEFAULT true,
    close_tickets      boolean NOT NULL DEFAULT true,
    edit_tickets       boolean NOT NULL DEFAULT false,
    create_tickets     boolean NOT NULL DEFAULT false,
    assign_tickets     boolean NOT NULL DEFAULT false,
    file_emails        boolean NOT NULL DEFAULT false,
    edit_recipients    boolean NOT NULL DEFAULT false,
    admin              boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now()
);

INSERT INTO employee_groups (name, is_system, ticket_scope, see_others, add_notes, log_charges,
    upload_attachments, close_tickets, edit_tickets, create_tickets, assign_tickets, file_emails,
    edit_recipients, admin) VALUES
  ('Administrators', true, 'all', 'all', true, true, true, true, true,  true,  true,  true,  true,  true),
  ('Standard',       true, 'all', 'all', true, true, true, true, true,  true,  true,  true,  true,  false),
  ('Subcontractors', true, 'own', 'own', true, true, true, true, false, false, false, false, false, false);

CREATE FUNCTION employee_groups_protect_system() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.is_system THEN
            RAISE EXCEPTION 'system groups exist from the first start; new groups are custom' USING ERRCODE = 'P0001';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.is_system THEN
        RAISE EXCEPTION 'employee privilege group "%" is a system group and cannot be %', OLD.name,
            CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'modified' END USING ERRCODE = 'P0001';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    IF NEW.is_system THEN
        RAISE EXCEPTION 'a custom group cannot be made a system group' USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER employee_groups_protect_system BEFORE INSERT OR UPDATE OR DELETE ON employee_groups
    FOR EACH ROW EXECUTE FUNCTION employee_groups_protect_system();

CREATE TABLE employees (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL CHECK (username ~ '^[A-Za-z0-9._@+-]{1,100}$'),
    full_name     text NOT NULL CHECK (length(btrim(full_name)) BETWEEN 1 AND 200),
    email         text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND email !~ '[\r\n]'),
    group_id      bigint NOT NULL REFERENCES employee_groups ON DELETE RESTRICT,
    active        boolean NOT NULL DEFAULT true,
    -- web access takes a license seat while the employee is active
    web_access    boolean NOT NULL DEFAULT true,
    password_hash text,
    all_accounts  boolean NOT NULL DEFAULT false,
    hourly_rate   numeric(10, 2) NOT NULL DEFAULT 0 CHECK (hourly_rate >= 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX employees_username ON employees (lower(username));
CREATE INDEX employees_group ON employees (group_id);

-- Web logins are one namespace: a username names either a customer web user or an employee.
CREATE FUNCTION usernames_unique_across_kinds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'employees' THEN
        IF EXISTS (SELECT 1 FROM customer_web_users WHERE lower(username) = lower(NEW.username)) THEN
            RAISE EXCEPTION 'username "%" is already taken', NEW.username USING ERRCODE = '23505';
        END IF;
    ELSIF EXISTS (SELECT 1 FROM employees WHERE lower(username) = lower(NEW.username)) THEN
        RAISE EXCEPTION 'username "%" is already taken', NEW.username USING ERRCODE = '23505';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER employees_username_unique BEFORE INSERT OR UPDATE OF username ON employees
    FOR EACH ROW EXECUTE FUNCTION usernames_unique_across_kinds();
CREATE TRIGGER customer_web_users_username_unique BEFORE INSERT OR UPDATE OF username ON customer_web_users
    FOR EACH ROW EXECUTE FUNCTION usernames_unique_across_kinds();

CREATE TABLE employee_accounts (
    employee_id bigint NOT NULL REFERENCES employees ON DELETE CASCADE,
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    PRIMARY KEY (employee_id, account_id)
);
CREATE INDEX employee_accounts_account ON employee_accounts (account_id);

-- Licenses: one row holding the number of employee web seats.
CREATE TABLE licenses (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seats     integer NOT NULL CHECK (seats >= 0)
);
INSERT INTO licenses (seats) VALUES (10);

CREATE FUNCTION seats_in_use() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT count(*)::integer FROM employees WHERE active AND web_access
$$;

-- The seat check lives in the database so that no writer, portal or otherwise, can overbook.
CREATE FUNCTION licenses_check_seats() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total integer;
    used  integer;
BEGIN
    -- Serialise seat changes so two activations cannot both take the last seat.
    PERFORM 1 FROM licenses FOR UPDATE;
    SELECT seats INTO total FROM licenses;
    used := seats_in_use();
    IF used > total THEN
        RAISE EXCEPTION 'no free license seat: % of % seats in use', total, total
            USING ERRCODE = 'P0001', HINT = 'deactivate another employee or raise the license count';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER employees_check_seats AFTER INSERT OR UPDATE OF active, web_access ON employees
    FOR EACH STATEMENT EXECUTE FUNCTION licenses_check_seats();

CREATE FUNCTION licenses_check_reduce() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE used integer := seats_in_use();
BEGIN
    IF NEW.seats < used THEN
        RAISE EXCEPTION 'cannot set % seats: % seats are in use', NEW.seats, used
            USING ERRCODE = 'P0001', HINT = 'deactivate employees first';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER licenses_check_reduce BEFORE UPDATE ON licenses
    FOR EACH ROW EXECUTE FUNCTION licenses_check_reduce();

-- Which events an employee wants by mail. Alerts: about tickets as such; recipient settings:
-- about tickets where the employee is a recipient.
CREATE TABLE employee_mail_settings (
    employee_id      bigint PRIMARY KEY REFERENCES employees ON DELETE CASCADE,
    alert_assigned   boolean NOT NULL DEFAULT true,
    alert_created    boolean NOT NULL DEFAULT false,
    alert_reminder   boolean NOT NULL DEFAULT true,
    alert_digest     boolean NOT NULL DEFAULT false,
    recv_note        boolean NOT NULL DEFAULT true,
    recv_status      boolean NOT NULL DEFAULT true,
    recv_closed      boolean NOT NULL DEFAULT true,
    recv_email       boolean NOT NULL DEFAULT true,
    recv_charge      boolean NOT NULL DEFAULT false,
    recv_own_changes boolean NOT NULL DEFAULT false
);

CREATE FUNCTION employees_default_mail_settings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO employee_mail_settings (employee_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER employees_default_mail_settings AFTER INSERT ON employees
    FOR EACH ROW EXECUTE FUNCTION employees_default_mail_settings();

CREATE TABLE assets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    kind        text NOT NULL DEFAULT '',
    serial      text NOT NULL DEFAULT '',
    config_note text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, id)
);
CREATE INDEX assets_account ON assets (account_id, name);

CREATE TABLE contracts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('pending', 'active', 'expired', 'cancelled')),
    terms       text NOT NULL DEFAULT '',
    starts_on   date,
    ends_on     date,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_on IS NULL OR starts_on IS NULL OR ends_on >= starts_on)
);
CREATE INDEX contracts_account ON contracts (account_id);

CREATE SEQUENCE ticket_numbers START 1000;

CREATE TABLE tickets (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number        text NOT NULL UNIQUE DEFAULT ('T-' || nextval('ticket_numbers')),
    account_id    bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    asset_id      bigint,
    priority      text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'waiting', 'closed')),
    description   text NOT NULL CHECK (length(btrim(description)) BETWEEN 1 AND 20000),
    assigned_to   bigint REFERENCES employees ON DELETE SET NULL,
    created_by_employee bigint REFERENCES employees ON DELETE SET NULL,
    created_by_webuser  bigint REFERENCES customer_web_users ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz,
    -- the linked asset must belong to the ticket's own account
    FOREIGN KEY (account_id, asset_id) REFERENCES assets (account_id, id),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX tickets_account_status ON tickets (account_id, status, id DESC);
CREATE INDEX tickets_assigned_status ON tickets (assigned_to, status, id DESC);
CREATE INDEX tickets_status_id ON tickets (status, id DESC);
CREATE INDEX tickets_updated ON tickets (updated_at) WHERE status <> 'closed';

CREATE TABLE ticket_recipients (
    ticket_id   bigint NOT NULL REFERENCES tickets ON DELETE CASCADE,
    employee_id bigint NOT NULL REFERENCES employees ON DELETE CASCADE,
    PRIMARY KEY (ticket_id, employee_id)
);
CREATE INDEX ticket_recipients_employee ON ticket_recipients (employee_id);

CREATE TABLE history_notes (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id          bigint NOT NULL REFERENCES tickets ON DELETE CASCADE,
    author_employee_id bigint REFERENCES employees ON DELETE SET NULL,
    author_webuser_id  bigint REFERENCES customer_web_users ON DELETE SET NULL,
    body               text NOT NULL CHECK (length(btrim(body)) BETWEEN 1 AND 20000),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (author_employee_id IS NULL OR author_webuser_id IS NULL)
);
CREATE INDEX history_notes_ticket ON history_notes (ticket_id, id);

CREATE TABLE charges (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id   bigint REFERENCES tickets ON DELETE CASCADE,
    contract_id bigint REFERENCES contracts ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('labor', 'expense', 'part')),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    -- labor: hours × rate; expense: 1 × amount; part: quantity × unit price
    quantity    numeric(12, 2) NOT NULL CHECK (quantity > 0 AND quantity <= 100000),
    unit_price  numeric(12, 2) NOT NULL CHECK (unit_price >= 0 AND unit_price <= 10000000),
    amount      numeric(14, 2) GENERATED ALWAYS AS (round(quantity * unit_price, 2)) STORED,
    employee_id bigint REFERENCES employees ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ticket_id IS NOT NULL OR contract_id IS NOT NULL),
    CHECK (kind <> 'expense' OR quantity = 1)
);
CREATE INDEX charges_ticket ON charges (ticket_id, id) WHERE ticket_id IS NOT NULL;
CREATE INDEX charges_contract ON charges (contract_id, id) WHERE contract_id IS NOT NULL;

CREATE TABLE ticket_emails (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id      bigint NOT NULL REFERENCES tickets ON DELETE CASCADE,
    from_addr      text NOT NULL DEFAULT '',
    to_addr        text NOT NULL DEFAULT '',
    subject        text NOT NULL DEFAULT '' CHECK (length(subject) <= 1000),
    body           text NOT NULL DEFAULT '',
    is_public      boolean NOT NULL DEFAULT false,
    -- the Auto-Submitted header of a filed mail; anything but 'no' is never answered by mail
    auto_submitted text NOT NULL DEFAULT 'no',
    filed_by       bigint REFERENCES employees ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_emails_ticket ON ticket_emails (ticket_id, id);

-- File contents live in the database, outside anything served directly, so any instance
-- serves any download and a backup holds everything.
CREATE TABLE blobs (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    data bytea NOT NULL
);

CREATE TABLE attachments (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id            bigint NOT NULL REFERENCES tickets ON DELETE CASCADE,
    filename             text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type         text NOT NULL DEFAULT 'application/octet-stream',
    size                 bigint NOT NULL CHECK (size >= 0),
    blob_id              bigint NOT NULL REFERENCES blobs,
    is_public            boolean NOT NULL DEFAULT true,
    uploaded_by_employee bigint REFERENCES employees ON DELETE SET NULL,
    uploaded_by_webuser  bigint REFERENCES customer_web_users ON DELETE SET NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_ticket ON attachments (ticket_id, id);

CREATE TABLE documents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    title        text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    filename     text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type text NOT NULL DEFAULT 'application/octet-stream',
    size         bigint NOT NULL CHECK (size >= 0),
    blob_id      bigint NOT NULL REFERENCES blobs,
    is_public    boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_account ON documents (account_id, id);

CREATE TABLE quotes (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id          bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    number              text NOT NULL UNIQUE,
    title               text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    description         text NOT NULL DEFAULT '',
    amount              numeric(14, 2) NOT NULL CHECK (amount >= 0),
    status              text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted', 'declined')),
    valid_until         date,
    accepted_by_webuser bigint REFERENCES customer_web_users ON DELETE SET NULL,
    accepted_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'accepted') = (accepted_at IS NOT NULL))
);
CREATE INDEX quotes_account ON quotes (account_id, id);

-- An accepted quote stays accepted: acceptance is one-way, whoever writes the database.
CREATE FUNCTION quotes_accept_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'accepted' AND (NEW.status <> 'accepted' OR NEW.accepted_at IS DISTINCT FROM OLD.accepted_at
            OR NEW.accepted_by_webuser IS DISTINCT FROM OLD.accepted_by_webuser) THEN
        RAISE EXCEPTION 'quote % was already accepted', OLD.number USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER quotes_accept_once BEFORE UPDATE ON quotes FOR EACH ROW EXECUTE FUNCTION quotes_accept_once();

CREATE TABLE kb_articles (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title      text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    body       text NOT NULL DEFAULT '',
    is_public  boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kb_files (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    article_id   bigint NOT NULL REFERENCES kb_articles ON DELETE CASCADE,
    filename     text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type text NOT NULL DEFAULT 'application/octet-stream',
    size         bigint NOT NULL CHECK (size >= 0),
    blob_id      bigint NOT NULL REFERENCES blobs
);
CREATE INDEX kb_files_article ON kb_files (article_id);

-- Server-side sessions: the cookie carries a random token; only its SHA-256 is stored.
CREATE TABLE sessions (
    token_hash   bytea PRIMARY KEY,
    webuser_id   bigint REFERENCES customer_web_users ON DELETE CASCADE,
    employee_id  bigint REFERENCES employees ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ip           text NOT NULL DEFAULT '',
    user_agent   text NOT NULL DEFAULT '',
    CHECK ((webuser_id IS NULL) <> (employee_id IS NULL))
);
CREATE INDEX sessions_webuser ON sessions (webuser_id) WHERE webuser_id IS NOT NULL;
CREATE INDEX sessions_employee ON sessions (employee_id) WHERE employee_id IS NOT NULL;
CREATE INDEX sessions_expires ON sessions (expires_at);

-- A deactivated user's sessions end at once, whoever deactivates them.
CREATE FUNCTION end_sessions_of_deactivated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'employees' THEN
        IF NOT NEW.active OR NOT NEW.web_access THEN
            DELETE FROM sessions WHERE employee_id = NEW.id;
        END IF;
    ELSIF NOT NEW.active THEN
        DELETE FROM sessions WHERE webuser_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER employees_end_sessions AFTER UPDATE OF active, web_access ON employees
    FOR EACH ROW EXECUTE FUNCTION end_sessions_of_deactivated();
CREATE TRIGGER customer_web_users_end_sessions AFTER UPDATE OF active ON customer_web_users
    FOR EACH ROW EXECUTE FUNCTION end_sessions_of_deactivated();

-- Failed login attempts, per user name and per address, for throttling across instances.
CREATE TABLE login_failures (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username text NOT NULL,
    ip       text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_username ON login_failures (lower(username), at);
CREATE INDEX login_failures_ip ON login_failures (ip, at);

CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,            -- 'employee:admin', 'webuser:full@acme', 'cli:root', 'db:<role>'
    action  text NOT NULL,            -- 'login', 'login_failed', 'group.set', 'download', ...
    target  text NOT NULL DEFAULT '',
    before  jsonb,
    after   jsonb,
    ip      text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_action ON audit_log (action, at DESC);

-- The mail outbox: rows are written in the same transaction as the change they tell of.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event           text NOT NULL CHECK (event IN ('assigned', 'created', 'note', 'status', 'closed',
                                                     'email', 'charge', 'reminder', 'digest', 'test')),
    ticket_id       bigint REFERENCES tickets ON DELETE CASCADE,
    employee_id     bigint REFERENCES employees ON DELETE CASCADE,
    -- the row that caused the event (note, charge, email id), to render its content
    subject_id      bigint,
    payload         jsonb NOT NULL DEFAULT '{}',
    -- fixed when the row is written, so a retry is recognisably the same mail
    message_id      text NOT NULL UNIQUE,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    locked_by       text,
    last_code       integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX outbox_ticket ON outbox (ticket_id, id);
CREATE INDEX outbox_status ON outbox (status, id);
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE status = 'sent';

-- Scheduled jobs run once across instances: the first to insert (job, slot) runs it.
CREATE TABLE scheduler_runs (
    job     text NOT NULL,
    slot    text NOT NULL,
    ran_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, slot)
);

-- Hot reload: a version bumped by every change to privilege-bearing data.
CREATE TABLE privilege_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL
);
INSERT INTO privilege_state (version) VALUES (1);

CREATE FUNCTION bump_privilege_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
    UPDATE privilege_state SET version = version + 1 RETURNING version INTO v;
    PERFORM pg_notify('portald_privileges', v::text);
    RETURN NULL;
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['customer_groups', 'customer_web_users', 'employee_groups', 'employees',
                             'employee_accounts', 'licenses', 'employee_mail_settings']
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION bump_privilege_version()',
                       t || '_bump_privilege_version', t);
    END LOOP;
END $$;
