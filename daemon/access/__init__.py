"""Who may see what: the one scope rule, principals, the privilege cache kept fresh by its
listener, and the explanation of a verdict."""
