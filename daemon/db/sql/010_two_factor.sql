-- Two-factor login (TOTP, RFC 6238) for customer web users and employees.
--
-- The TOTP secret is stored as it is (base32): the server has to compute the codes from it, so
-- it cannot be hashed. Whoever can read totp_credentials can make a user's codes; database
-- access (and backups) must be guarded as the passwords' hashes are, and more. Recovery codes
-- are random (50 bits) and kept only as their SHA-256; pending logins keep only the SHA-256
-- of their cookie's token, as sessions do.

-- A policy of the employee group: its members log in with a second factor, and are sent to set
-- one up before anything else. A privilege like the others, so it hot-reloads with them.
ALTER TABLE employee_groups ADD COLUMN require_2fa boolean NOT NULL DEFAULT false;

CREATE TABLE totp_credentials (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webuser_id   bigint UNIQUE REFERENCES customer_web_users ON DELETE CASCADE,
    employee_id  bigint UNIQUE REFERENCES employees ON DELETE CASCADE,
    secret       text NOT NULL CHECK (secret ~ '^[A-Z2-7]{16,128}$'),
    -- NULL while the user sets it up and has not yet shown a first code: not asked at login
    confirmed_at timestamptz,
    -- the last 30-second step a code was accepted for: a code is accepted once, and never one
    -- of an earlier step (a conditional UPDATE makes that one step across instances)
    last_step    bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((webuser_id IS NULL) <> (employee_id IS NULL))
);

CREATE TABLE totp_recovery_codes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webuser_id  bigint REFERENCES customer_web_users ON DELETE CASCADE,
    employee_id bigint REFERENCES employees ON DELETE CASCADE,
    code_hash   bytea NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((webuser_id IS NULL) <> (employee_id IS NULL))
);
CREATE INDEX totp_recovery_codes_webuser ON totp_recovery_codes (webuser_id) WHERE webuser_id IS NOT NULL;
CREATE INDEX totp_recovery_codes_employee ON totp_recovery_codes (employee_id) WHERE employee_id IS NOT NULL;

-- The first step done, the second to come: a password was right for a user with two-factor on.
-- In the database, so that any instance completes the login; one use, a few minutes.
CREATE TABLE pending_logins (
    token_hash  bytea PRIMARY KEY,
    webuser_id  bigint REFERENCES customer_web_users ON DELETE CASCADE,
    employee_id bigint REFERENCES employees ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ip          text NOT NULL DEFAULT '',
    CHECK ((webuser_id IS NULL) <> (employee_id IS NULL))
);
CREATE INDEX pending_logins_expires ON pending_logins (expires_at);

-- Whether a user has two-factor on is part of their principal (the group policy is checked
-- against it): turning it on or off changes the privilege snapshot. Using a code (last_step)
-- does not, so a login costs no reload.
CREATE TRIGGER totp_credentials_bump_privilege_version
    AFTER INSERT OR DELETE OR TRUNCATE ON totp_credentials
    FOR EACH STATEMENT EXECUTE FUNCTION bump_privilege_version();
CREATE TRIGGER totp_credentials_bump_privilege_version_on_update
    AFTER UPDATE OF confirmed_at, secret ON totp_credentials
    FOR EACH STATEMENT EXECUTE FUNCTION bump_privilege_version();

-- Web requests (portald_web): a user reaches their own rows, an administrator everyone's.
GRANT SELECT, INSERT, UPDATE, DELETE ON totp_credentials, totp_recovery_codes TO portald_web;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['totp_credentials', 'totp_recovery_codes']
    LOOP
        EXECUTE format('CREATE POLICY portald_owner ON %I TO %I USING (true) WITH CHECK (true)',
                       t, (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = t::regclass));
        EXECUTE format($p$CREATE POLICY portald_web_own ON %I FOR ALL TO portald_web
            USING (webuser_id::text = (SELECT portald_attribute('customer_id'))
                   OR employee_id::text = (SELECT portald_attribute('employee_id'))
                   OR (SELECT portald_attribute('employee_admin')) = 'true')
            WITH CHECK (webuser_id::text = (SELECT portald_attribute('customer_id'))
                   OR employee_id::text = (SELECT portald_attribute('employee_id'))
                   OR (SELECT portald_attribute('employee_admin')) = 'true')$p$, t);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    END LOOP;
END $$;

-- System groups stay as they are, but for the policy: an MSP requires two-factor login of its
-- Administrators above all. Any other change of a system group is refused as before.
CREATE OR REPLACE FUNCTION employee_groups_protect_system() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.is_system THEN
            RAISE EXCEPTION 'system groups exist from the first start; new groups are custom' USING ERRCODE = 'P0001';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.is_system
       AND to_jsonb(NEW) - 'require_2fa' = to_jsonb(OLD) - 'require_2fa' THEN
        RETURN NEW;
    END IF;
    IF OLD.is_system THEN
        RAISE EXCEPTION 'employee privilege group "%" is a system group and cannot be %', OLD.name,
            CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'modified' END USING ERRCODE = 'P0001';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    IF NEW.is_system THEN
        RAISE EXCEPTION 'a custom group cannot be made a system group' USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$;
