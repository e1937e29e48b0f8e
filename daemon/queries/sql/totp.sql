-- Two-factor login (daemon/db/sql/010_two_factor.sql), read by daemon/queries/totp.py.
-- A user is named by the pair ($1 web user id, $2 employee id), one of them NULL: `= NULL` is
-- never true, so `webuser_id = $1 OR employee_id = $2` finds exactly that user's rows.

-- name: credential --
SELECT id, secret, confirmed_at, last_step
  FROM totp_credentials
 WHERE webuser_id = $1 OR employee_id = $2;

-- name: delete_credential --
DELETE FROM totp_credentials WHERE webuser_id = $1 OR employee_id = $2;

-- name: insert_credential --
INSERT INTO totp_credentials (webuser_id, employee_id, secret, confirmed_at)
VALUES ($1, $2, $3, CASE WHEN $4::boolean THEN now() END)
RETURNING id;

-- name: confirm_credential --
-- the setup is confirmed with a first code, which counts as used
UPDATE totp_credentials SET confirmed_at = now(), last_step = $2
 WHERE id = $1 AND confirmed_at IS NULL AND last_step < $2
RETURNING id;

-- name: use_step --
-- a code is accepted once: only for a step later than the last one accepted
UPDATE totp_credentials SET last_step = $2
 WHERE id = $1 AND confirmed_at IS NOT NULL AND last_step < $2
RETURNING id;

-- name: delete_recovery_codes --
DELETE FROM totp_recovery_codes WHERE webuser_id = $1 OR employee_id = $2;

-- name: insert_recovery_codes --
INSERT INTO totp_recovery_codes (webuser_id, employee_id, code_hash)
SELECT $1, $2, h FROM unnest($3::bytea[]) AS h;

-- name: use_recovery_code --
UPDATE totp_recovery_codes SET used_at = now()
 WHERE id = (SELECT id FROM totp_recovery_codes
              WHERE (webuser_id = $1 OR employee_id = $2) AND code_hash = $3 AND used_at IS NULL
              LIMIT 1 FOR UPDATE)
RETURNING id;

-- name: recovery_codes_left --
SELECT count(*)::integer FROM totp_recovery_codes
 WHERE (webuser_id = $1 OR employee_id = $2) AND used_at IS NULL;

-- name: create_pending --
INSERT INTO pending_logins (token_hash, webuser_id, employee_id, expires_at, ip)
VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5);

-- name: pending --
-- the pending login of a token, while it is alive and its user may still log in (not
-- deactivated, web access kept, since the password step), with the login name it is for
SELECT p.webuser_id, p.employee_id, coalesce(u.username, e.username) AS username
  FROM pending_logins p
  LEFT JOIN customer_web_users u ON u.id = p.webuser_id
  LEFT JOIN employees e ON e.id = p.employee_id
 WHERE p.token_hash = $1 AND p.expires_at > now()
   AND (u.active OR (e.active AND e.web_access));

-- name: lock_pending --
-- the second step holds its pending login while it checks the code: another request for the
-- same pending login waits, and finds it gone if this one completed it
SELECT 1 FROM pending_logins WHERE token_hash = $1 AND expires_at > now() FOR UPDATE;

-- name: take_pending --
-- one use: whoever deletes it completes the login
DELETE FROM pending_logins WHERE token_hash = $1 AND expires_at > now()
RETURNING webuser_id, employee_id;

-- name: purge_pending --
DELETE FROM pending_logins WHERE expires_at < now();

-- name: enabled_webusers --
SELECT webuser_id FROM totp_credentials WHERE webuser_id IS NOT NULL AND confirmed_at IS NOT NULL;

-- name: enabled_employees --
SELECT employee_id FROM totp_credentials WHERE employee_id IS NOT NULL AND confirmed_at IS NOT NULL;
