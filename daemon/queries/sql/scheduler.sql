-- What the scheduled jobs do (daemon/mail/scheduler.py): enqueue reminder and digest events,
-- remove what is old, and make sure a (job, slot) runs once across instances. Read by
-- daemon/queries/scheduler.py.

-- name: lock_job --
-- transaction-scoped: $1 the portald_scheduler lock class, $2 the job
SELECT pg_advisory_xact_lock($1, hashtext($2));

-- name: claim_run --
INSERT INTO scheduler_runs (job, slot) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true;

-- name: enqueue_reminders --
-- Open, assigned tickets untouched for $1 hours, not reminded since they were last touched
-- nor within the last $1 hours: one reminder per ticket per $1 untouched hours.
INSERT INTO mail_events (event, ticket_id, employee_id, payload)
SELECT 'reminder', t.id, t.assigned_to,
       jsonb_build_object('hours', $1::int, 'untouched_since', t.updated_at)
  FROM tickets t
 WHERE t.status <> 'closed' AND t.assigned_to IS NOT NULL
   AND t.updated_at <= now() - make_interval(hours => $1::int)
   AND NOT EXISTS (SELECT 1 FROM mail_events e
                    WHERE e.ticket_id = t.id AND e.event = 'reminder'
                      AND e.created_at > greatest(t.updated_at, now() - make_interval(hours => $1::int)))
 ORDER BY t.id;

-- name: enqueue_digests --
-- Who asks for a digest gets one event; the fan-out and the renderer decide, with the
-- recipient's own scope, whether there is anything to tell.
INSERT INTO mail_events (event, employee_id, payload)
SELECT 'digest', s.employee_id, jsonb_build_object('date', $1::text)
  FROM employee_mail_settings s JOIN employees e ON e.id = s.employee_id
 WHERE s.alert_digest AND e.active
 ORDER BY s.employee_id;

-- name: delete_sent_mail --
DELETE FROM outbox WHERE status = 'sent' AND sent_at < now() - make_interval(days => $1::int);

-- name: delete_expanded_events --
DELETE FROM mail_events WHERE fanned_out AND created_at < now() - make_interval(days => $1::int);

-- name: delete_old_runs --
DELETE FROM scheduler_runs WHERE ran_at < now() - make_interval(days => $1::int);
