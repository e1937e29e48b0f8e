-- A pending login (010_two_factor.sql) is the first half of a session: the password step is
-- done. What ends a user's sessions ends their pending logins as well: a new password (an
-- administrator's reset, or the user's own change), a deactivation, web access taken away.
-- Whoever knew the old password must not finish a login begun with it, nor one begun before a
-- deactivation that was undone within the pending login's few minutes. In the database, so
-- that every program changing these does it. SECURITY DEFINER because portald_web (a user
-- changing their own password) has no rights on pending_logins. A rehash of the same password
-- at login fires it too, and only drops pending logins the user can begin again.
CREATE FUNCTION end_pending_logins() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_TABLE_NAME = 'customer_web_users' THEN
        DELETE FROM pending_logins WHERE webuser_id = NEW.id;
    ELSE
        DELETE FROM pending_logins WHERE employee_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER customer_web_users_end_pending_logins
    AFTER UPDATE OF password_hash, active ON customer_web_users FOR EACH ROW
    WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash OR (OLD.active AND NOT NEW.active))
    EXECUTE FUNCTION end_pending_logins();
CREATE TRIGGER employees_end_pending_logins
    AFTER UPDATE OF password_hash, active, web_access ON employees FOR EACH ROW
    WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash OR (OLD.active AND NOT NEW.active)
          OR (OLD.web_access AND NOT NEW.web_access))
    EXECUTE FUNCTION end_pending_logins();
