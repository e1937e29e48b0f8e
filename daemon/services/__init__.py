"""What an administrator does: accounts, privilege groups, web users, employees, licenses,
the mail outbox and employees' mail settings.

The CLI (`portald admin …`) and the portal's admin pages both call these functions, so the two
can never disagree. Each change runs in one transaction, writes one `audit_log` row (actor,
action, target, before, after) and returns a plain JSON-serialisable dict. Input a person can
get wrong raises `AdminError` with a one-line reason, and nothing is written.
"""
