"""Test helpers everyone uses: clients built through the real services, and what they wrote.

``make_client`` registers through ``register()`` and then moves the client with
the lifecycle functions (``approve``/``deny``/``suspend``/``retire``), so every
client a test sees is one the real services could have produced. ``count`` and
``events`` read back the rows and the audit trail a test's requests left.
"""
from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import timedelta

from joserfc.jwk import ECKey
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent
from app.models.client import ACTIVE, DENIED, EXPIRED, PENDING, RETIRED, SUSPENDED
from app.registration import lifecycle
from app.registration.service import register
from app.support import clock

ACTOR = "admin:factory"


def count(model, *conditions, **where) -> int:
    """How many rows of ``model`` match ``conditions`` (SQLAlchemy expressions) and ``where``
    (column=value)."""
    return db.session.scalar(select(func.count()).select_from(model).where(*conditions).filter_by(**where))


def events(event_type: str | None = None, *, only: str | None = None, **where) -> list:
    """The audit events of ``event_type`` (of every type if None) whose columns match ``where``,
    oldest first; with ``only``, that column of each (``only="actor"``: who did them)."""
    if event_type is not None:
        where["event_type"] = event_type
    selected = select(AuditEvent if only is None else getattr(AuditEvent, only))
    return list(db.session.scalars(selected.filter_by(**where).order_by(AuditEvent.id)))


def sqlite_write_lock_is_free(database: str) -> bool:
    """Whether another connection would get SQLite's write lock at once (``BEGIN IMMEDIATE``)."""
    other = sqlite3.connect(database, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        return True
    except sqlite3.OperationalError:  # database is locked
        return False
    finally:
        other.close()


def at_once(app, attempt, copies: int = 8) -> list:
    """Run ``attempt()`` in ``copies`` threads at once, each in an app context and a session of
    its own; returns what the attempts returned, in no particular order."""
    results = []

    def run():
        with app.app_context():
            try:
                results.append(attempt())
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@dataclass
class Made:
    client_id: str
    client_secret: str | None
    private_key: ECKey | None
    jwks: dict | None
    registration_access_token: str


def new_key(kid: str = "k1") -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig", "alg": "ES256"}, private=True)


def public_jwks(*keys: ECKey) -> dict:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def approve(client_id: str, *, scopes=("read",), audiences=("https://api.example.com",), max_token_ttl=300,
            days: int = 90, assurance_level: int = 1, proofing_method: str = "in_person", serves=()):
    """Approve as an administrator who reviewed the registration as it is now."""
    now = clock.now()
    return lifecycle.approve(
        client_id, version=lifecycle.get_client(client_id).version, serves=list(serves), owner="team-agents", purpose="tests", scopes=list(scopes), audiences=list(audiences),
        max_token_ttl=max_token_ttl, expires_at=now + timedelta(days=days),
        review_at=now + timedelta(days=min(days, 30)), assurance_level=assurance_level,
        proofing_method=proofing_method, evidence="ticket-1", actor=ACTOR)


def make_client(auth_method: str = "private_key_jwt", status: str = "active", scopes=("read",),
                audiences=("https://api.example.com",), max_token_ttl: int = 300, *,
                address: str | None = "192.0.2.1", serves=(), **metadata) -> Made:
    """A client in ``status``; ``metadata`` overrides the registered fields; ``serves``: the
    resources it is approved as the relying service of.

    ``expired`` is reached the real way: a one-day approval, the clock moved
    two days on (and left there) and ``expire_due``.
    """
    key = None
    body = {"client_name": "test agent", "token_endpoint_auth_method": auth_method,
            "scope": " ".join(scopes), "grant_types": ["client_credentials"]}
    if auth_method == "private_key_jwt" and "jwks" not in metadata and "jwks_uri" not in metadata:
        key = new_key()
        body["jwks"] = public_jwks(key)
    body.update(metadata)
    reg = register(body, address=address)
    client_id = reg.client.client_id
    if status != PENDING and status != DENIED:
        approve(client_id, scopes=scopes, audiences=audiences, max_token_ttl=max_token_ttl,
                days=1 if status == EXPIRED else 90, serves=serves)
    if status == DENIED:
        lifecycle.deny(client_id, reason="test denial", actor=ACTOR)
    elif status == SUSPENDED:
        lifecycle.suspend(client_id, reason="test suspension", actor=ACTOR)
    elif status == RETIRED:
        lifecycle.retire(client_id, actor=ACTOR, reason="test retirement")
    elif status == EXPIRED:
        clock.advance(2 * 24 * 3600)
        lifecycle.expire_due(client_id=client_id)
    elif status not in (ACTIVE, PENDING):
        raise ValueError(f"unknown status {status!r}")
    return Made(client_id=client_id, client_secret=reg.client_secret, private_key=key,
                jwks=body.get("jwks"), registration_access_token=reg.registration_access_token)


PUBLISHER = "https://publisher.example.com"


def add_publisher(key: ECKey | None = None, issuer: str = PUBLISHER, assurance_level: int = 2):
    """A trusted publisher with one EC key; returns (publisher, private key)."""
    from app.trust import issuers
    key = key or new_key("pub-1")
    return issuers.add(issuers.PUBLISHERS, issuer, jwks=public_jwks(key), assurance_level=assurance_level, actor=ACTOR), key


def software_statement(key: ECKey, *, issuer: str = PUBLISHER, header: dict | None = None, alg: str = "ES256",
                       **claims) -> str:
    """A statement signed with ``key``; claims default to a fresh iat and software_id 'acme-agent'."""
    from joserfc import jwt
    body = {"iss": issuer, "iat": int(clock.timestamp()), "software_id": "acme-agent",
            "client_name": "Acme Agent", "software_version": "1.0"}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": key.kid, **(header or {})}, body, key, algorithms=[alg])


def clone_clients(made: Made, n: int, *, start=None, step: timedelta = timedelta(minutes=1),
                  **columns) -> list[str]:
    """``n`` copies of a client ``make_client`` made (its approval too), inserted with one
    statement per table: thousands in a second, where ``register()`` would take minutes. Each
    copy has an id of its own and is created ``step`` after the one before, the first at
    ``start`` (default: ``n`` steps before now); ``columns`` override the client's values
    (``client_name="agent {i}"`` is formatted with each copy's number). Returns the ids,
    oldest first."""
    from sqlalchemy import bindparam, insert, update

    from app.models import Approval, Client
    client = db.session.get(Client, made.client_id)
    row = {c.key: getattr(client, c.key) for c in Client.__mapper__.column_attrs}
    approval = client.approval
    approval_row = ({c.key: getattr(approval, c.key) for c in Approval.__mapper__.column_attrs if c.key != "id"}
                    if approval else None)
    start = start or clock.now() - step * n
    clients = []
    for i in range(n):
        copy = {**row, "client_id": f"{made.client_id[:20]}{i:012d}", "created_at": start + step * i,
                "updated_at": start + step * i, "approval_id": None}
        copy.update({k: v.format(i=i) if isinstance(v, str) else v for k, v in columns.items()})
        clients.append(copy)
    db.session.execute(insert(Client), clients)
    if approval_row is not None:
        ids = db.session.scalars(insert(Approval).returning(Approval.id, sort_by_parameter_order=True),
                                 [{**approval_row, "client_id": c["client_id"]} for c in clients]).all()
        db.session.execute(update(Client.__table__).where(Client.__table__.c.client_id == bindparam("cid"))
                           .values(approval_id=bindparam("aid")),
                           [{"cid": c["client_id"], "aid": a} for c, a in zip(clients, ids)])
    db.session.commit()
    return [c["client_id"] for c in clients]
