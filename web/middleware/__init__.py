"""The middlewares every request passes through, outermost first: metrics, errors (one error
shape), access (who is asking, and may they use this route), CSRF."""
