"""The handlers of the portal, by area: api/ (JSON), pages/ (HTML), admin/ (the admin pages)."""
