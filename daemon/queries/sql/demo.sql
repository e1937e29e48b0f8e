-- The demo data set's rows (daemon/dev/demo.py), written with plain SQL as any program writing
-- the database would. Read by daemon/queries/demo.py.

-- name: accounts_named --
SELECT name FROM accounts WHERE name = ANY($1::text[]);

-- name: customer_groups_named --
SELECT name FROM customer_groups WHERE name = ANY($1::text[]);

-- name: logins_named --
SELECT lower(username) AS u FROM customer_web_users WHERE lower(username) = ANY($1::text[])
UNION SELECT lower(username) FROM employees WHERE lower(username) = ANY($1::text[]);

-- name: insert_account --
INSERT INTO accounts (name, contact_name, phone, email, address, created_at)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id;

-- name: insert_customer_group --
-- a custom group: a copy of the group named $2 with tickets_view $3
INSERT INTO customer_groups (name, tickets_add, tickets_edit, priority, ticket_asset, charges,
                             assets, asset_config_note, history_notes, contracts, public_emails,
                             documents, upload_files, kb, quotes, change_password, tickets_view)
SELECT $1, tickets_add, tickets_edit, priority, ticket_asset, charges, assets, asset_config_note,
       history_notes, contracts, public_emails, documents, upload_files, kb, quotes,
       change_password, $3
  FROM customer_groups WHERE name = $2 RETURNING id;

-- name: insert_webuser --
-- $2: the privilege group's name
INSERT INTO customer_web_users (account_id, group_id, username, full_name, email, password_hash)
SELECT $1, id, $3, $4, $5, $6 FROM customer_groups WHERE name = $2 RETURNING id;

-- name: make_room_for --
-- the seat check runs per statement: room for $1 more employees, and at least $2 seats
UPDATE licenses SET seats = GREATEST(seats, seats_in_use() + $1, $2);

-- name: insert_employee --
-- $4: the privilege group's name
INSERT INTO employees (username, full_name, email, group_id, password_hash, all_accounts,
                       hourly_rate)
SELECT $1, $2, $3, id, $5, $6, $7 FROM employee_groups WHERE name = $4 RETURNING id;

-- name: add_employee_account --
INSERT INTO employee_accounts (employee_id, account_id) VALUES ($1, $2);

-- name: insert_blob --
INSERT INTO blobs (data) VALUES ($1) RETURNING id;

-- name: insert_asset --
INSERT INTO assets (account_id, name, kind, serial, config_note)
VALUES ($1, $2, $3, $4, $5) RETURNING id;

-- name: insert_contract --
INSERT INTO contracts (account_id, name, status, terms, starts_on, ends_on)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id;

-- name: insert_document --
INSERT INTO documents (account_id, title, filename, content_type, size, blob_id, is_public)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: insert_quote --
INSERT INTO quotes (account_id, number, title, description, amount, status, valid_until,
                    accepted_by_webuser, accepted_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: insert_kb_article --
INSERT INTO kb_articles (title, body, is_public) VALUES ($1, $2, $3) RETURNING id;

-- name: insert_kb_file --
INSERT INTO kb_files (article_id, filename, content_type, size, blob_id)
VALUES ($1, $2, $3, $4, $5);

-- name: insert_charge --
INSERT INTO charges (ticket_id, contract_id, kind, description, quantity, unit_price,
                     employee_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: insert_ticket --
INSERT INTO tickets (account_id, asset_id, priority, status, description, assigned_to,
                     created_by_employee, created_by_webuser, created_at, updated_at, closed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id;

-- name: add_ticket_recipient --
INSERT INTO ticket_recipients (ticket_id, employee_id) VALUES ($1, $2);

-- name: insert_note --
INSERT INTO history_notes (ticket_id, author_employee_id, author_webuser_id, body, created_at)
VALUES ($1, $2, $3, $4, $5);

-- name: insert_ticket_email --
INSERT INTO ticket_emails (ticket_id, from_addr, to_addr, subject, body, is_public, filed_by,
                           created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: insert_attachment --
INSERT INTO attachments (ticket_id, filename, content_type, size, blob_id, is_public,
                         uploaded_by_employee, uploaded_by_webuser, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: now --
SELECT now();

-- name: lock --
-- two loaders at once: the second waits for the first, then finds everything present
SELECT pg_advisory_xact_lock($1);
