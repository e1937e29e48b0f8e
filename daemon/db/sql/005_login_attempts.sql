-- "Check the limit, count the attempt" as one step, on every instance alike: the attempt is
-- counted before the password is checked, under a lock per name and per address, so however
-- many attempts arrive at once only the limit of them ever reaches the password hash.
-- login_failures now holds attempts not yet known good: a login that succeeds deletes its
-- name's rows, a password change that succeeds deletes its own row.
--
-- Answers the seconds to wait (0: go ahead) and the id of the counted attempt.
CREATE FUNCTION login_attempt(p_username text, p_ip text, p_limit integer, p_window_s integer,
                              OUT retry_s integer, OUT attempt_id bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    by_user  bigint;
    by_ip    bigint;
    user_wait integer;
    ip_wait   integer;
BEGIN
    -- always name before address: two attempts never wait for each other in a cycle
    PERFORM pg_advisory_xact_lock(hashtext('portald_login_user'), hashtext(lower(p_username)));
    PERFORM pg_advisory_xact_lock(hashtext('portald_login_ip'), hashtext(p_ip));
    -- a new snapshot after the locks: the attempts committed by whoever held them count
    SELECT count(*) FILTER (WHERE lower(username) = lower(p_username)),
           count(*) FILTER (WHERE ip = p_ip),
           ceil(extract(epoch FROM min(at) FILTER (WHERE lower(username) = lower(p_username))
                + make_interval(secs => p_window_s) - clock_timestamp())),
           ceil(extract(epoch FROM min(at) FILTER (WHERE ip = p_ip)
                + make_interval(secs => p_window_s) - clock_timestamp()))
      INTO by_user, by_ip, user_wait, ip_wait
      FROM login_failures
     WHERE at > clock_timestamp() - make_interval(secs => p_window_s)
       AND (lower(username) = lower(p_username) OR ip = p_ip);
    IF by_user >= p_limit OR by_ip >= p_limit THEN
        retry_s := greatest(1,
            CASE WHEN by_user >= p_limit THEN coalesce(user_wait, 1) ELSE 0 END,
            CASE WHEN by_ip >= p_limit THEN coalesce(ip_wait, 1) ELSE 0 END);
        RETURN;
    END IF;
    INSERT INTO login_failures (username, ip, at) VALUES (p_username, p_ip, clock_timestamp())
    RETURNING id INTO attempt_id;
    retry_s := 0;
END $$;
