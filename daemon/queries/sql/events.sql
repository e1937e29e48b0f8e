-- The mail events the database records (triggers of 003_mail.sql) as the fan-out expands
-- them into outbox rows (daemon/mail/fanout.py). Read by daemon/queries/events.py.

-- name: claim_events --
SELECT id, event, ticket_id, subject_id, employee_id, actor_employee_id, actor_webuser_id,
       payload, created_at
  FROM mail_events
 WHERE NOT fanned_out
 ORDER BY id
 LIMIT $1
   FOR UPDATE SKIP LOCKED;

-- name: ticket_recipients --
SELECT ticket_id, employee_id FROM ticket_recipients WHERE ticket_id = ANY($1::bigint[]);

-- name: created_alert_employees --
SELECT employee_id FROM employee_mail_settings WHERE alert_created;

-- name: mail_settings_with_address --
SELECT s.*, e.email
  FROM employee_mail_settings s JOIN employees e ON e.id = s.employee_id
 WHERE s.employee_id = ANY($1::bigint[]);

-- name: insert_outbox_rows --
-- one row per element of the eight arrays
INSERT INTO outbox (event, ticket_id, employee_id, subject_id, payload, message_id, status,
                    last_error)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::jsonb[],
                     $6::text[], $7::text[], $8::text[]);

-- name: mark_fanned_out --
UPDATE mail_events SET fanned_out = true WHERE id = ANY($1::bigint[]);

-- name: set_aside_first_event --
-- the first pending event, which cannot be expanded: marked done with the error kept
UPDATE mail_events SET fanned_out = true, error = $1
 WHERE id = (SELECT id FROM mail_events WHERE NOT fanned_out
              ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id;
