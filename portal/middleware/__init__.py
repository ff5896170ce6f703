"""Site-wide request checks and response headers (see the README's "Security" section)."""
