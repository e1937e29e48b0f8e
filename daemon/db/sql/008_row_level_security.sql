-- Row-level security, the second wall (SPEC §8). The query layer's scope (daemon/access/scope.py)
-- stays the first wall; these policies say the same rule again in the database, so that a query
-- which forgets its scope conditions still returns nothing outside the principal's scope.
--
-- Who is subject to what:
-- * portald_web: the role every web request's transaction runs as (daemon/access/acting.py sets
--   `role` with set_config(…, true) and names the principal, 'customer:<web user id>' or
--   'employee:<employee id>', with portald_act_as below). It owns nothing, so it is held to
--   every policy below; with no principal set it sees no row of any table here.
-- * the tables' owner (the role that migrates: the mail worker, the CLI, the demo loader serve no
--   principal): FORCE makes even the owner subject to policies, so it gets one of its own that
--   lets everything through.
-- * a superuser bypasses row-level security altogether (the test suite connects as one; the web
--   path is still held to the policies because it runs as portald_web).
--
-- The policies read the principal's attributes through a small STABLE SQL function in scalar
-- subqueries `(SELECT portald_attribute('…'))`: PostgreSQL then computes each once per
-- statement (an InitPlan) instead of once per row.

-- 1. The role -----------------------------------------------------------------------------------
-- Roles belong to the whole cluster, databases do not: several databases of one cluster (the
-- test suite's clones, a staging copy) may migrate at once, so creating the role and joining it
-- tolerate losing the race. Creating it needs CREATEROLE; without it an administrator creates
-- it beforehand (README: "Who the database sees") and this only joins it and grants.
DO $$
DECLARE
    member boolean;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'portald_web') THEN
        BEGIN
            CREATE ROLE portald_web NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;  -- another database was first
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'the role portald_web does not exist and % may not create it', current_user
                    USING HINT = format('give %I CREATEROLE, or have an administrator run: '
                                        'CREATE ROLE portald_web NOLOGIN; GRANT portald_web TO %I;',
                                        current_user, current_user);
        END;
    END IF;
    -- The migrating role must be able to SET ROLE portald_web: membership, and from
    -- PostgreSQL 16 on the SET option of it (a role made by a CREATEROLE user carries ADMIN only).
    IF current_setting('server_version_num')::int >= 160000 THEN
        EXECUTE 'SELECT pg_has_role(current_user, ''portald_web'', ''SET'')' INTO member;
    ELSE
        member := pg_has_role(current_user, 'portald_web', 'MEMBER');
    END IF;
    IF NOT member THEN
        BEGIN
            EXECUTE format('GRANT portald_web TO %I', current_user);
        EXCEPTION
            WHEN unique_violation THEN NULL;  -- granted by a migration of another database
            WHEN insufficient_privilege OR invalid_grant_operation THEN
                RAISE EXCEPTION '% may not become portald_web', current_user
                    USING HINT = format('have an administrator run: GRANT portald_web TO %I;', current_user);
        END;
    END IF;
END $$;

-- 2. What portald_web may touch (per database: these grants live in this database) ------------
GRANT USAGE ON SCHEMA public TO portald_web;
-- tickets and their children: read, and the changes the portal makes
GRANT SELECT, INSERT, UPDATE ON tickets TO portald_web;
GRANT SELECT, INSERT ON history_notes, charges, ticket_emails, attachments, blobs TO portald_web;
GRANT SELECT, INSERT, DELETE ON ticket_recipients TO portald_web;
GRANT USAGE ON SEQUENCE ticket_numbers TO portald_web;
-- account data: read; quotes are accepted
GRANT SELECT ON assets, contracts, documents, kb_articles, kb_files TO portald_web;
GRANT SELECT, UPDATE ON quotes TO portald_web;
-- people, groups and licenses: read by every request, changed on the admin pages
GRANT SELECT, INSERT ON accounts TO portald_web;
GRANT SELECT, INSERT, UPDATE, DELETE ON customer_groups, employee_groups, employee_accounts TO portald_web;
GRANT SELECT, INSERT, UPDATE ON customer_web_users, employees, employee_mail_settings TO portald_web;
GRANT SELECT, UPDATE ON licenses TO portald_web;
-- a logout or a password change ends sessions; a password change counts as an attempt (kept
-- when the current password is wrong, dropped when it is right)
GRANT SELECT, DELETE ON sessions TO portald_web;
GRANT SELECT, INSERT, DELETE ON login_failures TO portald_web;
GRANT SELECT, INSERT ON audit_log TO portald_web;
-- the delivery status on a ticket page and the admin outbox (retry)
GRANT SELECT, UPDATE ON outbox TO portald_web;

-- A privilege change made on the admin pages bumps the version the hot reload follows; the
-- bump runs as its owner, so portald_web needs no right on privilege_state itself.
ALTER FUNCTION bump_privilege_version() SECURITY DEFINER SET search_path FROM CURRENT;

-- 3. The principal and its attributes -------------------------------------------------------
-- The helper names the principal with portald_act_as (in the statement that switches the role):
-- it sets `portald.principal` and reads, once per transaction and from the tables themselves,
-- what the policies need to know of it into transaction-local settings. An unknown, malformed
-- or deactivated principal gets none, so nothing matches. Reading the users and groups in
-- every statement instead made the policies five to seven times as dear (measured: +50 µs on
-- a ticket read by id, +120 µs on a ticket's notes, against +7 and +21); the first wall's
-- principal is likewise the one of the request's start.
CREATE FUNCTION portald_act_as(principal text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    attribute text;
    cust record;
    emp record;
BEGIN
    PERFORM set_config('portald.principal', coalesce(principal, ''), true);
    FOREACH attribute IN ARRAY ARRAY['customer_id', 'customer_account', 'customer_tickets_view',
                                'customer_documents', 'customer_kb', 'employee_id',
                                'employee_all_accounts', 'employee_accounts', 'employee_ticket_scope',
                                'employee_see_others', 'employee_documents', 'employee_kb',
                                'employee_admin']
    LOOP
        PERFORM set_config('portald.' || attribute, '', true);
    END LOOP;
    IF principal ~ '^customer:[0-9]{1,18}$' THEN
        SELECT u.id, u.account_id, g.tickets_view, g.documents, g.kb INTO cust
          FROM customer_web_users u JOIN customer_groups g ON g.id = u.group_id
         WHERE u.id = substr(principal, 10)::bigint AND u.active;
        IF FOUND THEN
            PERFORM set_config('portald.customer_id', cust.id::text, true),
                    set_config('portald.customer_account', cust.account_id::text, true),
                    set_config('portald.customer_tickets_view', cust.tickets_view, true),
                    set_config('portald.customer_documents', cust.documents::text, true),
                    set_config('portald.customer_kb', cust.kb, true);
        END IF;
    ELSIF principal ~ '^employee:[0-9]{1,18}$' THEN
        SELECT e.id, e.all_accounts, g.ticket_scope, g.see_others, g.documents, g.kb, g.admin,
               ARRAY(SELECT a.account_id FROM employee_accounts a WHERE a.employee_id = e.id) AS accounts
          INTO emp
          FROM employees e JOIN employee_groups g ON g.id = e.group_id
         WHERE e.id = substr(principal, 10)::bigint AND e.active;
        IF FOUND THEN
            PERFORM set_config('portald.employee_id', emp.id::text, true),
                    set_config('portald.employee_all_accounts', emp.all_accounts::text, true),
                    set_config('portald.employee_accounts', emp.accounts::text, true),
                    set_config('portald.employee_ticket_scope', emp.ticket_scope, true),
                    set_config('portald.employee_see_others', emp.see_others, true),
                    set_config('portald.employee_documents', emp.documents, true),
                    set_config('portald.employee_kb', emp.kb, true),
                    set_config('portald.employee_admin', emp.admin::text, true);
        END IF;
    END IF;
    -- whose attributes these are: a principal named later in the same transaction by any
    -- other means gets none of them
    PERFORM set_config('portald.attributes_of', coalesce(principal, ''), true);
    RETURN principal;
END $$;

-- One attribute of the principal (NULL when there is none, or when it was not read for the
-- principal named now). A plain SQL expression that PostgreSQL inlines; the policies read
-- it in scalar subqueries, so it is an InitPlan computed once per statement.
CREATE FUNCTION portald_attribute(name text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN current_setting('portald.principal', true) <> ''
                 AND current_setting('portald.attributes_of', true) = current_setting('portald.principal', true)
                THEN nullif(current_setting('portald.' || name, true), '') END
$$;

-- The tickets this transaction's principal created or changed. A writer sees what it has just
-- written: an own-scope employee who creates a ticket for someone else, or reassigns one of
-- theirs away, gets it back from INSERT/UPDATE … RETURNING (PostgreSQL checks the new row
-- against the SELECT policy), though it is not theirs to read afterwards. The row passed the
-- INSERT or UPDATE policy to get here; the list lives and dies with the transaction.
CREATE FUNCTION portald_written_tickets() RETURNS bigint[] LANGUAGE sql STABLE AS $$
    SELECT string_to_array(nullif(current_setting('portald.written_tickets', true), ''), ',')::bigint[]
$$;

CREATE FUNCTION tickets_remember_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('portald.principal', true), '') <> '' THEN
        PERFORM set_config('portald.written_tickets',
                           concat_ws(',', nullif(current_setting('portald.written_tickets', true), ''),
                                     NEW.id::text), true);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tickets_remember_written BEFORE INSERT OR UPDATE ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_remember_written();

-- 4. The policies of portald_web --------------------------------------------------------------
-- The same rule as scope.py: customers their account (and with tickets_view=own the tickets
-- they raised), public emails and files only; employees the accounts they may access, with
-- ticket_scope=own the tickets assigned to them, with see_others=own only the children they
-- added; documents and KB articles by level. A child row is visible when its ticket is (the
-- EXISTS is itself held to the tickets policy); the principal's own condition comes first,
-- as it is the cheaper one and, for own-data employees, rules most rows out alone.
--
-- Each read of the principal is a scalar subquery: an InitPlan, run once per statement.
-- The whole of a row condition is wrapped in coalesce(…, false) (NULL is no row either way):
-- the planner cannot know the InitPlans' values and would take `account_id = <the customer's
-- account>` for a condition that rules out all accounts but one on top of the query's own
-- `account_id = …`, and then prefer reading every open ticket of the account and sorting to
-- walking the index newest first; coalesce makes it an opaque condition of even odds.

-- accounts: their own, the listed ones; administrators manage them all on the admin pages
CREATE POLICY portald_web_read ON accounts FOR SELECT TO portald_web USING (coalesce(
    id = (SELECT portald_attribute('customer_account'))::bigint
    OR (SELECT portald_attribute('employee_all_accounts')) = 'true'
    OR id = ANY ((SELECT portald_attribute('employee_accounts'))::bigint[])
    OR (SELECT portald_attribute('employee_admin')) = 'true', false));
CREATE POLICY portald_web_add ON accounts FOR INSERT TO portald_web
    WITH CHECK (coalesce((SELECT portald_attribute('employee_admin')) = 'true', false));

CREATE POLICY portald_web_read ON tickets FOR SELECT TO portald_web USING (coalesce(
    (account_id = (SELECT portald_attribute('customer_account'))::bigint
     AND ((SELECT portald_attribute('customer_tickets_view')) = 'account'
          OR created_by_webuser = (SELECT portald_attribute('customer_id'))::bigint))
    OR (((SELECT portald_attribute('employee_all_accounts')) = 'true'
         OR account_id = ANY ((SELECT portald_attribute('employee_accounts'))::bigint[]))
        AND ((SELECT portald_attribute('employee_ticket_scope')) = 'all'
             OR assigned_to = (SELECT portald_attribute('employee_id'))::bigint))
    OR id = ANY (portald_written_tickets()), false));
-- a new ticket: in the customer's own account, or an account the employee may access, and
-- recorded as raised by whoever raises it
CREATE POLICY portald_web_add ON tickets FOR INSERT TO portald_web WITH CHECK (coalesce(
    (account_id = (SELECT portald_attribute('customer_account'))::bigint
     AND created_by_webuser = (SELECT portald_attribute('customer_id'))::bigint AND created_by_employee IS NULL)
    OR (((SELECT portald_attribute('employee_all_accounts')) = 'true'
         OR account_id = ANY ((SELECT portald_attribute('employee_accounts'))::bigint[]))
        AND created_by_employee = (SELECT portald_attribute('employee_id'))::bigint AND created_by_webuser IS NULL),
    false));
CREATE POLICY portald_web_change ON tickets FOR UPDATE TO portald_web USING (coalesce(
    (account_id = (SELECT portald_attribute('customer_account'))::bigint
     AND ((SELECT portald_attribute('customer_tickets_view')) = 'account'
          OR created_by_webuser = (SELECT portald_attribute('customer_id'))::bigint))
    OR (((SELECT portald_attribute('employee_all_accounts')) = 'true'
         OR account_id = ANY ((SELECT portald_attribute('employee_accounts'))::bigint[]))
        AND ((SELECT portald_attribute('employee_ticket_scope')) = 'all'
             OR assigned_to = (SELECT portald_attribute('employee_id'))::bigint))
    OR id = ANY (portald_written_tickets()), false))
    WITH CHECK (coalesce(
    account_id = (SELECT portald_attribute('customer_account'))::bigint
    OR (SELECT portald_attribute('employee_all_accounts')) = 'true'
    OR account_id = ANY ((SELECT portald_attribute('employee_accounts'))::bigint[]), false));

CREATE POLICY portald_web_read ON history_notes FOR SELECT TO portald_web USING (coalesce(
    ((SELECT portald_attribute('customer_id'))::bigint IS NOT NULL
     OR (SELECT portald_attribute('employee_see_others')) = 'all'
     OR author_employee_id = (SELECT portald_attribute('employee_id'))::bigint)
    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));
CREATE POLICY portald_web_add ON history_notes FOR INSERT TO portald_web WITH CHECK (coalesce(
    EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id)
    AND ((author_webuser_id = (SELECT portald_attribute('customer_id'))::bigint AND author_employee_id IS NULL)
         OR (author_employee_id = (SELECT portald_attribute('employee_id'))::bigint AND author_webuser_id IS NULL)),
    false));

-- charges of a ticket or of a contract (a contract's are behind the contracts right already)
CREATE POLICY portald_web_read ON charges FOR SELECT TO portald_web USING (coalesce(
    ((SELECT portald_attribute('customer_id'))::bigint IS NOT NULL
     OR (SELECT portald_attribute('employee_see_others')) = 'all'
     OR employee_id = (SELECT portald_attribute('employee_id'))::bigint)
    AND (ticket_id IS NULL OR EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id))
    AND (contract_id IS NULL OR EXISTS (SELECT 1 FROM contracts k WHERE k.id = contract_id)), false));
CREATE POLICY portald_web_add ON charges FOR INSERT TO portald_web WITH CHECK (coalesce(
    employee_id = (SELECT portald_attribute('employee_id'))::bigint
    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));

CREATE POLICY portald_web_read ON ticket_emails FOR SELECT TO portald_web USING (coalesce(
    (((SELECT portald_attribute('customer_id'))::bigint IS NOT NULL AND is_public)
     OR (SELECT portald_attribute('employee_see_others')) = 'all'
     OR filed_by = (SELECT portald_attribute('employee_id'))::bigint)
    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));
CREATE POLICY portald_web_add ON ticket_emails FOR INSERT TO portald_web WITH CHECK (coalesce(
    filed_by = (SELECT portald_attribute('employee_id'))::bigint
    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));

CREATE POLICY portald_web_read ON attachments FOR SELECT TO portald_web USING (coalesce(
    (((SELECT portald_attribute('customer_id'))::bigint IS NOT NULL AND is_public)
     OR (SELECT portald_attribute('employee_see_others')) = 'all'
     OR uploaded_by_employee = (SELECT portald_attribute('employee_id'))::bigint)
    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));
-- what a customer uploads is public
CREATE POLICY portald_web_add ON attachments FOR INSERT TO portald_web WITH CHECK (coalesce(
    EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id)
    AND ((uploaded_by_webuser = (SELECT portald_attribute('customer_id'))::bigint
          AND uploaded_by_employee IS NULL AND is_public)
         OR (uploaded_by_employee = (SELECT portald_attribute('employee_id'))::bigint
             AND uploaded_by_webuser IS NULL)), false));

-- recipients are the employees' business
CREATE POLICY portald_web_all ON ticket_recipients FOR ALL TO portald_web
    USING (coalesce((SELECT portald_attribute('employee_id'))::bigint IS NOT NULL
                    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false))
    WITH CHECK (coalesce((SELECT portald_attribute('employee_id'))::bigint IS NOT NULL
                         AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));

CREATE POLICY portald_web_read ON assets FOR SELECT TO portald_web USING (coalesce(
    account_id = (SELECT portald_attribute('customer_account'))::bigint
    OR (SELECT portald_attribute('employee_all_accounts')) = 'true'
    OR account_id = ANY ((SELECT portald_attribute('employee_accounts'))::bigint[]), false));

CREATE POLICY portald_web_read ON contracts FOR SELECT TO portald_web USING (coalesce(
    account_id = (SELECT portald_attribute('customer_account'))::bigint
    OR (SELECT portald_attribute('employee_all_accounts')) = 'true'
    OR account_id = ANY ((SELECT portald_attribute('employee_accounts'))::bigint[]), false));

CREATE POLICY portald_web_read ON quotes FOR SELECT TO portald_web USING (coalesce(
    account_id = (SELECT portald_attribute('customer_account'))::bigint
    OR (SELECT portald_attribute('employee_all_accounts')) = 'true'
    OR account_id = ANY ((SELECT portald_attribute('employee_accounts'))::bigint[]), false));
-- accepting is the customer's act, recorded in their name
CREATE POLICY portald_web_accept ON quotes FOR UPDATE TO portald_web
    USING (coalesce(account_id = (SELECT portald_attribute('customer_account'))::bigint, false))
    WITH CHECK (coalesce(account_id = (SELECT portald_attribute('customer_account'))::bigint
                         AND accepted_by_webuser = (SELECT portald_attribute('customer_id'))::bigint, false));

-- documents and articles by level: customers with documents / kb=view the public ones,
-- employees as their documents / kb level says (scope.documents_level, scope.kb_level)
CREATE POLICY portald_web_read ON documents FOR SELECT TO portald_web USING (coalesce(
    (account_id = (SELECT portald_attribute('customer_account'))::bigint
     OR (SELECT portald_attribute('employee_all_accounts')) = 'true'
     OR account_id = ANY ((SELECT portald_attribute('employee_accounts'))::bigint[]))
    AND (((SELECT portald_attribute('customer_documents')) = 'true' AND is_public)
         OR (SELECT portald_attribute('employee_documents')) = 'all'
         OR ((SELECT portald_attribute('employee_documents')) = 'public' AND is_public)), false));

CREATE POLICY portald_web_read ON kb_articles FOR SELECT TO portald_web USING (coalesce(
    ((SELECT portald_attribute('customer_kb')) IN ('view', 'download') AND is_public)
    OR (SELECT portald_attribute('employee_kb')) = 'all'
    OR ((SELECT portald_attribute('employee_kb')) = 'public' AND is_public), false));

CREATE POLICY portald_web_read ON kb_files FOR SELECT TO portald_web USING (
    EXISTS (SELECT 1 FROM kb_articles a WHERE a.id = article_id));

-- 5. On, for everyone but superusers; the owner keeps everything ------------------------------
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['accounts', 'tickets', 'history_notes', 'charges', 'ticket_emails',
                             'attachments', 'ticket_recipients', 'assets', 'contracts', 'quotes',
                             'documents', 'kb_articles', 'kb_files']
    LOOP
        EXECUTE format('CREATE POLICY portald_owner ON %I TO %I USING (true) WITH CHECK (true)',
                       t, (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = t::regclass));
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    END LOOP;
END $$;
