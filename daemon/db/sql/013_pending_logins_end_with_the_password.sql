-- A pending login (010_two_factor.sql) is the first half of a session: the password step is
-- done. A new password ends a user's sessions (an administrator's reset, or the user's own
-- change), so it ends their pending logins as well: whoever knew the old password must not
-- finish a login begun with it. In the database, so that every program setting a password
-- does it. SECURITY DEFINER because portald_web (a user changing their own password) has no
-- rights on pending_logins. A rehash of the same password at login also fires it, and only
-- drops pending logins of that same password, which the user can begin again.
CREATE FUNCTION pending_logins_end_with_the_password() RETURNS trigger LANGUAGE plpgsql
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
    AFTER UPDATE OF password_hash ON customer_web_users FOR EACH ROW
    WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash)
    EXECUTE FUNCTION pending_logins_end_with_the_password();
CREATE TRIGGER employees_end_pending_logins
    AFTER UPDATE OF password_hash ON employees FOR EACH ROW
    WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash)
    EXECUTE FUNCTION pending_logins_end_with_the_password();
