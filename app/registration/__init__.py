"""RFC 7591/7592 registration, software statements, initial access tokens, and the approval
lifecycle (approve, deny, suspend, reactivate, retire, expire)."""
