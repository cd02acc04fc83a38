"""report: small CSV tables."""
