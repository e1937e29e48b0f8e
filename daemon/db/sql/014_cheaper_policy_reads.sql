-- The policies of 008 read the principal's attributes for less: one check per policy that the
-- attributes are the named principal's, then one setting per attribute.
--
-- Each `(SELECT portald_attribute('…'))` of 008 is an InitPlan, and the executor sets up every
-- InitPlan of a statement when it starts, run or not. portald_attribute inlines to a CASE over
-- four current_setting calls (the principal is set, the attributes are its own, the value), so
-- each costs about 1.3 µs to set up against 0.5 µs for a read of one setting, and the ticket
-- page's statement carries about 110 of them (the tickets policy again inside every child's
-- EXISTS). Here the check that the attributes belong to the principal named now is made once
-- per policy, `(SELECT portald_attributes_current())`, ANDed with the policy's condition, and
-- the attributes themselves are read with portald_setting: the setting alone.
--
-- The rule is the same for every principal. Under a current principal each attribute is what
-- portald_attribute gave (the setting, NULL when empty). Without one, portald_attribute gave NULL
-- for every attribute, and every condition below that reads an attribute was then NULL or
-- false (only comparisons, `= ANY`, `IN` and `IS NOT NULL` read them); now the guard makes it
-- false, which coalesce(…, false) turned NULL into anyway. The one part of a condition that
-- reads no attribute, a writer's own tickets (portald_written_tickets()), stays outside the
-- guard, as it held without a principal's attributes before too.
--
-- Measured on the bench data set (100,000 tickets), one connection, the backend's on-CPU time
-- per transaction (BEGIN; role and portald_act_as; the prepared statement; COMMIT) as customer
-- full@acme, best of 40 rounds of 150 while the machine was otherwise busy:
--   ticket page (daemon/queries/ticket_page.py)  330 µs before, 298 after, 181 with no policies
--   list page (open tickets, 50)                 248 before, 253 after (the same within noise),
--                                                463 with no policies (a worse plan there)
--   JSON list (all tickets, 50)                  253 before, 253 after, 559 with no policies
-- What is left on the ticket page is mostly the child tables' `EXISTS` on tickets: with those
-- taken out as well as the check above (neither a policy one may keep, only to weigh them) it
-- cost 229 against 181, while the check costs some 20 of the 298 left. The EXISTS
-- stays as it is; copying a ticket's scope columns into its children, kept by triggers,
-- would remove it, at the price of rewriting the children on every reassignment and of
-- locking the ticket on every child written (a child added while its ticket is reassigned
-- would otherwise keep the old assignee).
-- The list keeps its plan (tickets_account_id walked newest first, the policy a filter): the
-- conditions are still wrapped in coalesce(…, false), see 008.

-- The attribute settings are those of the principal named now (portald_act_as sets them and
-- records whose they are in `attributes_of`, last). Inlined; read in a scalar subquery, so it
-- is one InitPlan per policy.
CREATE FUNCTION portald_attributes_current() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('portald.principal', true) <> ''
                    AND current_setting('portald.attributes_of', true) = current_setting('portald.principal', true),
                    false)
$$;

-- One attribute setting, NULL when empty, whoever it belongs to: to be read only under
-- portald_attributes_current(), as every policy below does. portald_attribute stays for the
-- policies that read an attribute or two (010).
CREATE FUNCTION portald_setting(name text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('portald.' || name, true), '')
$$;

-- accounts
ALTER POLICY portald_web_read ON accounts USING (coalesce((SELECT portald_attributes_current()) AND (
    id = (SELECT portald_setting('customer_account'))::bigint
    OR (SELECT portald_setting('employee_all_accounts')) = 'true'
    OR id = ANY ((SELECT portald_setting('employee_accounts'))::bigint[])
    OR (SELECT portald_setting('employee_admin')) = 'true'), false));
ALTER POLICY portald_web_add ON accounts WITH CHECK (coalesce((SELECT portald_attributes_current())
    AND (SELECT portald_setting('employee_admin')) = 'true', false));

-- tickets
ALTER POLICY portald_web_read ON tickets USING (coalesce(
    ((SELECT portald_attributes_current()) AND (
        (account_id = (SELECT portald_setting('customer_account'))::bigint
         AND ((SELECT portald_setting('customer_tickets_view')) = 'account'
              OR created_by_webuser = (SELECT portald_setting('customer_id'))::bigint))
        OR (((SELECT portald_setting('employee_all_accounts')) = 'true'
             OR account_id = ANY ((SELECT portald_setting('employee_accounts'))::bigint[]))
            AND ((SELECT portald_setting('employee_ticket_scope')) = 'all'
                 OR assigned_to = (SELECT portald_setting('employee_id'))::bigint))))
    OR id = ANY (portald_written_tickets()), false));
ALTER POLICY portald_web_add ON tickets WITH CHECK (coalesce((SELECT portald_attributes_current()) AND (
    (account_id = (SELECT portald_setting('customer_account'))::bigint
     AND created_by_webuser = (SELECT portald_setting('customer_id'))::bigint AND created_by_employee IS NULL)
    OR (((SELECT portald_setting('employee_all_accounts')) = 'true'
         OR account_id = ANY ((SELECT portald_setting('employee_accounts'))::bigint[]))
        AND created_by_employee = (SELECT portald_setting('employee_id'))::bigint AND created_by_webuser IS NULL)),
    false));
ALTER POLICY portald_web_change ON tickets USING (coalesce(
    ((SELECT portald_attributes_current()) AND (
        (account_id = (SELECT portald_setting('customer_account'))::bigint
         AND ((SELECT portald_setting('customer_tickets_view')) = 'account'
              OR created_by_webuser = (SELECT portald_setting('customer_id'))::bigint))
        OR (((SELECT portald_setting('employee_all_accounts')) = 'true'
             OR account_id = ANY ((SELECT portald_setting('employee_accounts'))::bigint[]))
            AND ((SELECT portald_setting('employee_ticket_scope')) = 'all'
                 OR assigned_to = (SELECT portald_setting('employee_id'))::bigint))))
    OR id = ANY (portald_written_tickets()), false))
    WITH CHECK (coalesce((SELECT portald_attributes_current()) AND (
    account_id = (SELECT portald_setting('customer_account'))::bigint
    OR (SELECT portald_setting('employee_all_accounts')) = 'true'
    OR account_id = ANY ((SELECT portald_setting('employee_accounts'))::bigint[])), false));

-- history_notes
ALTER POLICY portald_web_read ON history_notes USING (coalesce((SELECT portald_attributes_current()) AND
    ((SELECT portald_setting('customer_id'))::bigint IS NOT NULL
     OR (SELECT portald_setting('employee_see_others')) = 'all'
     OR author_employee_id = (SELECT portald_setting('employee_id'))::bigint)
    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));
ALTER POLICY portald_web_add ON history_notes WITH CHECK (coalesce((SELECT portald_attributes_current()) AND
    EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id)
    AND ((author_webuser_id = (SELECT portald_setting('customer_id'))::bigint AND author_employee_id IS NULL)
         OR (author_employee_id = (SELECT portald_setting('employee_id'))::bigint AND author_webuser_id IS NULL)),
    false));

-- charges
ALTER POLICY portald_web_read ON charges USING (coalesce((SELECT portald_attributes_current()) AND
    ((SELECT portald_setting('customer_id'))::bigint IS NOT NULL
     OR (SELECT portald_setting('employee_see_others')) = 'all'
     OR employee_id = (SELECT portald_setting('employee_id'))::bigint)
    AND (ticket_id IS NULL OR EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id))
    AND (contract_id IS NULL OR EXISTS (SELECT 1 FROM contracts k WHERE k.id = contract_id)), false));
ALTER POLICY portald_web_add ON charges WITH CHECK (coalesce((SELECT portald_attributes_current()) AND
    employee_id = (SELECT portald_setting('employee_id'))::bigint
    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));

-- ticket_emails
ALTER POLICY portald_web_read ON ticket_emails USING (coalesce((SELECT portald_attributes_current()) AND
    (((SELECT portald_setting('customer_id'))::bigint IS NOT NULL AND is_public)
     OR (SELECT portald_setting('employee_see_others')) = 'all'
     OR filed_by = (SELECT portald_setting('employee_id'))::bigint)
    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));
ALTER POLICY portald_web_add ON ticket_emails WITH CHECK (coalesce((SELECT portald_attributes_current()) AND
    filed_by = (SELECT portald_setting('employee_id'))::bigint
    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));

-- attachments
ALTER POLICY portald_web_read ON attachments USING (coalesce((SELECT portald_attributes_current()) AND
    (((SELECT portald_setting('customer_id'))::bigint IS NOT NULL AND is_public)
     OR (SELECT portald_setting('employee_see_others')) = 'all'
     OR uploaded_by_employee = (SELECT portald_setting('employee_id'))::bigint)
    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));
ALTER POLICY portald_web_add ON attachments WITH CHECK (coalesce((SELECT portald_attributes_current()) AND
    EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id)
    AND ((uploaded_by_webuser = (SELECT portald_setting('customer_id'))::bigint
          AND uploaded_by_employee IS NULL AND is_public)
         OR (uploaded_by_employee = (SELECT portald_setting('employee_id'))::bigint
             AND uploaded_by_webuser IS NULL)), false));

-- ticket_recipients
ALTER POLICY portald_web_all ON ticket_recipients
    USING (coalesce((SELECT portald_attributes_current())
                    AND (SELECT portald_setting('employee_id'))::bigint IS NOT NULL
                    AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false))
    WITH CHECK (coalesce((SELECT portald_attributes_current())
                         AND (SELECT portald_setting('employee_id'))::bigint IS NOT NULL
                         AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id), false));

-- assets, contracts, quotes
ALTER POLICY portald_web_read ON assets USING (coalesce((SELECT portald_attributes_current()) AND (
    account_id = (SELECT portald_setting('customer_account'))::bigint
    OR (SELECT portald_setting('employee_all_accounts')) = 'true'
    OR account_id = ANY ((SELECT portald_setting('employee_accounts'))::bigint[])), false));
ALTER POLICY portald_web_read ON contracts USING (coalesce((SELECT portald_attributes_current()) AND (
    account_id = (SELECT portald_setting('customer_account'))::bigint
    OR (SELECT portald_setting('employee_all_accounts')) = 'true'
    OR account_id = ANY ((SELECT portald_setting('employee_accounts'))::bigint[])), false));
ALTER POLICY portald_web_read ON quotes USING (coalesce((SELECT portald_attributes_current()) AND (
    account_id = (SELECT portald_setting('customer_account'))::bigint
    OR (SELECT portald_setting('employee_all_accounts')) = 'true'
    OR account_id = ANY ((SELECT portald_setting('employee_accounts'))::bigint[])), false));
ALTER POLICY portald_web_accept ON quotes
    USING (coalesce((SELECT portald_attributes_current())
                    AND account_id = (SELECT portald_setting('customer_account'))::bigint, false))
    WITH CHECK (coalesce((SELECT portald_attributes_current())
                         AND account_id = (SELECT portald_setting('customer_account'))::bigint
                         AND accepted_by_webuser = (SELECT portald_setting('customer_id'))::bigint, false));

-- documents, kb_articles (kb_files reads no attribute: its article's policy decides)
ALTER POLICY portald_web_read ON documents USING (coalesce((SELECT portald_attributes_current()) AND
    (account_id = (SELECT portald_setting('customer_account'))::bigint
     OR (SELECT portald_setting('employee_all_accounts')) = 'true'
     OR account_id = ANY ((SELECT portald_setting('employee_accounts'))::bigint[]))
    AND (((SELECT portald_setting('customer_documents')) = 'true' AND is_public)
         OR (SELECT portald_setting('employee_documents')) = 'all'
         OR ((SELECT portald_setting('employee_documents')) = 'public' AND is_public)), false));
ALTER POLICY portald_web_read ON kb_articles USING (coalesce((SELECT portald_attributes_current()) AND (
    ((SELECT portald_setting('customer_kb')) IN ('view', 'download') AND is_public)
    OR (SELECT portald_setting('employee_kb')) = 'all'
    OR ((SELECT portald_setting('employee_kb')) = 'public' AND is_public)), false));
