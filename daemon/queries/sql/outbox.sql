-- The outbox as the delivery worker works it (daemon/mail/worker.py): claim a small batch
-- under a lease, renew the lease while the batch lasts, record each server answer, release
-- what was not tried. Read by daemon/queries/outbox.py.

-- name: claim_batch --
-- $1 batch size, $2 lease in seconds, $3 the claiming instance
WITH due AS (
    SELECT id FROM outbox
     WHERE status = 'queued' AND next_attempt_at <= now()
       AND (locked_until IS NULL OR locked_until < now())
     ORDER BY next_attempt_at, id
     LIMIT $1
       FOR UPDATE SKIP LOCKED)
UPDATE outbox o SET locked_until = now() + make_interval(secs => $2), locked_by = $3
  FROM due WHERE o.id = due.id
RETURNING o.id, o.event, o.ticket_id, o.employee_id, o.subject_id, o.payload, o.message_id,
          o.attempts, o.created_at;

-- name: renew_lease --
UPDATE outbox SET locked_until = now() + make_interval(secs => $3)
 WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND status = 'queued'
RETURNING id;

-- name: mark_sent --
-- a mail the server accepted is sent, whoever holds the row now
UPDATE outbox o SET status = 'sent', sent_at = now(), attempts = o.attempts + 1,
                    last_code = r.code, last_error = NULL, locked_until = NULL, locked_by = NULL
  FROM unnest($1::bigint[], $2::int[]) AS r(id, code)
 WHERE o.id = r.id AND o.status = 'queued';

-- name: mark_unsent --
-- retried after delay_s unless final or past retry_max_hours ($6) from the row's creation;
-- `tried` says whether the mail was offered to the server (a dropped one was not)
UPDATE outbox o
   SET attempts = o.attempts + r.tried::int, last_code = r.code, last_error = r.error,
       locked_until = NULL, locked_by = NULL,
       next_attempt_at = now() + make_interval(secs => r.delay_s),
       status = CASE WHEN r.final
                       OR now() + make_interval(secs => r.delay_s)
                          > o.created_at + make_interval(hours => $6)
                     THEN 'failed' ELSE 'queued' END
  FROM unnest($1::bigint[], $2::int[], $3::text[], $4::float8[], $5::bool[], $7::bool[])
       AS r(id, code, error, delay_s, final, tried)
 WHERE o.id = r.id AND o.status = 'queued'
RETURNING o.id, o.status;

-- name: release_leases --
UPDATE outbox SET locked_until = NULL, locked_by = NULL
 WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND status = 'queued';

-- name: release_all_leases --
UPDATE outbox SET locked_until = NULL, locked_by = NULL
 WHERE locked_by = $1 AND status = 'queued';

-- The relay answers again after connection failures: mails that waited out a backoff only
-- because it could not be reached (no SMTP answer recorded) are due now, not in minutes.
-- name: retry_unreachable_now --
UPDATE outbox SET next_attempt_at = now()
 WHERE status = 'queued' AND attempts > 0 AND last_code IS NULL AND next_attempt_at > now();

-- name: next_due_in --
SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM outbox
 WHERE status = 'queued' AND next_attempt_at > now()
 ORDER BY next_attempt_at LIMIT 1;

-- name: queue_state --
-- the whole queue, whichever instance holds what: every instance reports the same figures
SELECT count(*) AS queued,
       count(*) FILTER (WHERE locked_until > now()) AS leased,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_age_s
  FROM outbox WHERE status = 'queued';
