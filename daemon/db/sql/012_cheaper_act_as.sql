-- portald_act_as (008_row_level_security.sql) in one statement instead of about twenty.
--
-- Every web request names its principal once; the function of 008 did that with a PERFORM per
-- setting (a loop clearing thirteen, then five or eight more), each a statement of its own
-- inside PL/pgSQL: about 0.3 ms of the database's CPU per request, as much as the ticket page's
-- own query. The same settings, in the same order (the principal first, `attributes_of` last),
-- now come from one SELECT: a principal that is malformed, unknown or deactivated gets every
-- attribute empty, exactly as before, so nothing matches for it.
CREATE OR REPLACE FUNCTION portald_act_as(principal text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    kind text := CASE WHEN principal ~ '^customer:[0-9]{1,18}$' THEN 'customer'
                      WHEN principal ~ '^employee:[0-9]{1,18}$' THEN 'employee' END;
    who bigint := CASE WHEN kind IS NOT NULL THEN substr(principal, 10)::bigint END;
BEGIN
    PERFORM set_config('portald.principal', coalesce(principal, ''), true),
            set_config('portald.customer_id', coalesce(c.id::text, ''), true),
            set_config('portald.customer_account', coalesce(c.account_id::text, ''), true),
            set_config('portald.customer_tickets_view', coalesce(c.tickets_view, ''), true),
            set_config('portald.customer_documents', coalesce(c.documents::text, ''), true),
            set_config('portald.customer_kb', coalesce(c.kb, ''), true),
            set_config('portald.employee_id', coalesce(e.id::text, ''), true),
            set_config('portald.employee_all_accounts', coalesce(e.all_accounts::text, ''), true),
            set_config('portald.employee_accounts', coalesce(e.accounts::text, ''), true),
            set_config('portald.employee_ticket_scope', coalesce(e.ticket_scope, ''), true),
            set_config('portald.employee_see_others', coalesce(e.see_others, ''), true),
            set_config('portald.employee_documents', coalesce(e.documents, ''), true),
            set_config('portald.employee_kb', coalesce(e.kb, ''), true),
            set_config('portald.employee_admin', coalesce(e.admin::text, ''), true),
            -- whose attributes these are: a principal named later in the same transaction by
            -- any other means gets none of them
            set_config('portald.attributes_of', coalesce(principal, ''), true)
       FROM (SELECT) AS one
       LEFT JOIN (SELECT u.id, u.account_id, g.tickets_view, g.documents, g.kb
                    FROM customer_web_users u JOIN customer_groups g ON g.id = u.group_id
                   WHERE kind = 'customer' AND u.id = who AND u.active) c ON true
       LEFT JOIN (SELECT x.id, x.all_accounts, g.ticket_scope, g.see_others, g.documents, g.kb,
                         g.admin,
                         ARRAY(SELECT a.account_id FROM employee_accounts a
                                WHERE a.employee_id = x.id) AS accounts
                    FROM employees x JOIN employee_groups g ON g.id = x.group_id
                   WHERE kind = 'employee' AND x.id = who AND x.active) e ON true;
    RETURN principal;
END $$;
