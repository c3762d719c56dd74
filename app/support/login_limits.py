"""Failed-login limits, shared by the console's administrators and the people's sign-in: failures
are rows in the shared database (``app.models.LoginFailure``), counted per account and per
address over a sliding window, so the limits hold across workers and instances. Over either
limit a login is refused before its password is checked.

Each kind of account counts apart (``FailedLogins(realm=…)``): a person named alice does not
spend the administrator alice's failures, and people mistyping behind one address do not lock
the administrators at that address out of the console. A realm's rows carry its name as a prefix
of both keys (``person:alice``, ``person:198.51.100.7``); the administrators' rows have none (they
predate realms), and an administrator's username cannot hold a colon.

The model is given by the caller (the layer below the models knows none of them); the audit
event of a refusal is the caller's to write.
"""
from __future__ import annotations

import math
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select

from app.extensions import db
from app.support import clock

KEY_LENGTH = 64  # LoginFailure.username and .address


class LoginThrottled(Exception):
    """Too many failed logins for the account or from the address within the window."""

    def __init__(self, reason: str, retry_after: int):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class FailedLogins:
    def __init__(self, model, realm: str | None = None):
        self.model, self.prefix = model, f"{realm}:" if realm else ""

    def check(self, username: str, address: str | None) -> None:
        """Raise ``LoginThrottled`` if the account or the address has too many failures in the
        window. Concurrent attempts may each see the count just under a limit: it can be exceeded
        by the attempts in flight at once, never more. Locking for the count would serialise
        every login behind the slowest password check."""
        config = current_app.config
        since = self._since()
        failure = self.model
        for reason, column, value, limit in (
                ("too many failed logins for this account", failure.username, self._key(username),
                 config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
                ("too many failed logins from this address", failure.address, self._key(address),
                 config["LOGIN_MAX_FAILURES_PER_ADDRESS"])):
            retry_after = self._retry_after(column, value, limit, since)
            if retry_after:
                raise LoginThrottled(reason, retry_after)

    def count(self, username: str, address: str | None) -> None:
        """One more failure (no commit), and the rows no window counts any more swept."""
        db.session.add(self.model(username=self._key(username), address=self._key(address), at=clock.now()))
        db.session.execute(delete(self.model).where(self.model.at <= self._since()))

    def succeeded(self, username: str, address: str | None) -> None:
        """Forget this account's failures from this address only (no commit): a success must not
        wipe out what other addresses tried against the account."""
        db.session.execute(delete(self.model).where(self.model.username == self._key(username),
                                                    self.model.address == self._key(address)))

    def forget(self, username: str) -> None:
        """Forget every failure of the account (no commit): with a new password, they were
        guesses at the old one, and this is how an operator lets someone back in who ran into the
        per-account limit."""
        db.session.execute(delete(self.model).where(self.model.username == self._key(username)))

    def _key(self, value: str | None) -> str | None:
        return None if value is None else (self.prefix + value)[:KEY_LENGTH]

    @staticmethod
    def _since():
        return clock.now() - timedelta(seconds=current_app.config["LOGIN_FAILURE_WINDOW"])

    def _retry_after(self, column, value, limit: int, since) -> int | None:
        """Seconds until fewer than ``limit`` failures of ``value`` are in the window (None: already)."""
        if value is None:
            return None
        # The limit-th most recent failure: once it leaves the window, the count is under the limit.
        at = db.session.execute(select(self.model.at).where(column == value, self.model.at > since)
                                .order_by(self.model.at.desc()).offset(limit - 1).limit(1)).scalar()
        if at is None:
            return None
        return max(1, math.ceil((at - since).total_seconds()))
