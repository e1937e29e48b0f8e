"""Mail: events fanned out to their recipients, what each may see, the mails rendered and
written as bytes, delivered over SMTP with retries, and the scheduled reminders and digests."""
