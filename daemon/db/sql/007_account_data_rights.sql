-- Rights over account data and tickets that were missing from the privilege groups.
--
-- Employee rights over account data (SPEC §3): until now every employee, a subcontractor
-- included, read the assets, configuration notes, contracts, quotes, internal documents and
-- internal KB articles of every account it may access. Each becomes a right of the group.
--
-- New custom groups start with the least: everything off, no documents, public KB articles.
ALTER TABLE employee_groups
    ADD COLUMN assets            boolean NOT NULL DEFAULT false,
    ADD COLUMN asset_config_note boolean NOT NULL DEFAULT false,
    ADD COLUMN contracts         boolean NOT NULL DEFAULT false,
    ADD COLUMN quotes            boolean NOT NULL DEFAULT false,
    ADD COLUMN documents         text NOT NULL DEFAULT 'none'
                                 CHECK (documents IN ('none', 'public', 'all')),
    ADD COLUMN kb                text NOT NULL DEFAULT 'public' CHECK (kb IN ('public', 'all'));

-- The system groups get the levels SPEC §3 gives them. Their protect trigger refuses any change
-- by anyone, which is the point; this migration is the one writer that must set them, so it
-- steps around the trigger for one statement. DISABLE TRIGGER is part of this transaction:
-- should anything here fail, the trigger was never off.
-- Subcontractors keep the defaults above (all off, documents=none, kb=public).
ALTER TABLE employee_groups DISABLE TRIGGER employee_groups_protect_system;
UPDATE employee_groups
   SET assets = true, asset_config_note = true, contracts = true, quotes = true,
       documents = 'all', kb = 'all'
 WHERE is_system AND name IN ('Administrators', 'Standard');
ALTER TABLE employee_groups ENABLE TRIGGER employee_groups_protect_system;

-- Custom groups made before these rights existed read everything. Those that see all tickets
-- of their accounts keep that (they are groups of the Standard kind); those that see only their
-- own tickets are of the Subcontractors kind and get its levels, the defaults above.
UPDATE employee_groups
   SET assets = true, asset_config_note = true, contracts = true, quotes = true,
       documents = 'all', kb = 'all'
 WHERE NOT is_system AND ticket_scope = 'all';

-- Which of the account's tickets a customer sees (SPEC §2, identifier 15): `account` (all of
-- them, what every group had so far, the system groups included) or `own` (those the web user
-- raised: tickets.created_by_webuser; a ticket raised elsewhere is nobody's own). Adding the
-- column fires no row trigger, so the system groups get `account` like everyone else.
ALTER TABLE customer_groups
    ADD COLUMN tickets_view text NOT NULL DEFAULT 'account' CHECK (tickets_view IN ('own', 'account'));
