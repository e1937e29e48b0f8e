"""The administrator's pages under /admin: the portal face of daemon/services.

Every change goes through the same functions of daemon/services that `portald admin …` calls,
so the pages and the CLI can never disagree; these modules only translate HTTP forms into
those calls and their answers (or AdminError reasons) into pages.
"""
