"""OAuth 2.0 protocol: Authlib server wiring, metadata, grants, tokens."""
