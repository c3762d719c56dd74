"""The token endpoint's client cache (app.oauth.clients): a token is never issued on a cached
record that the database no longer holds, and no refusal rests on one; either way the
request is answered from a fresh read, and written once."""
import dataclasses
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import AssertionJti, AuditEvent, Client, IssuedToken
from app.oauth import clients
from app.registration import lifecycle
from app.support import clock
from app.trust import keysets

from .factories import ACTOR, count, make_client
from .test_token import driver_statements
from .token_actions import auth


def cached(app, made):
    return app.extensions["ostiary.clients"].usable(made.client_id)


@pytest.fixture
def fresh_reads(monkeypatch):
    """The client ids read from the database by ``load_client``."""
    reads, load = [], clients.dbapi.fetch_one

    def counting(statement, params):
        if statement is clients.LOAD:
            reads.append(params["client_id"])
        return load(statement, params)

    monkeypatch.setattr(clients.dbapi, "fetch_one", counting)
    return reads


def test_a_client_suspended_elsewhere_gets_no_token_from_its_cached_record(new_agent, app):
    """The suspension goes around this process's cache, as another instance's would."""
    made = make_client(auth_method="client_secret_basic")
    agent = new_agent(made)
    assert agent.token().status_code == 200
    assert cached(app, made) is not None
    lifecycle.suspend(made.client_id, reason="compromised", actor=ACTOR)
    response = agent.token()
    assert response.status_code == 400 and response.get_json()["error"] == "unauthorized_client"
    assert "suspended" in response.get_json()["error_description"]
    assert count(IssuedToken, client_id=made.client_id) == 1
    assert count(AuditEvent, event_type="token.refused", client_id=made.client_id) == 1
    assert cached(app, made) is None


@pytest.mark.parametrize("settings", [{"SECRET_ROTATION_GRACE": 0}])
def test_a_rotated_secret_works_at_once_and_the_old_one_does_not(new_agent, app):
    made = make_client(auth_method="client_secret_basic")
    assert new_agent(made).token().status_code == 200
    assert cached(app, made) is not None  # still holds the old secret's hash
    secret, _, previous_until = lifecycle.rotate_secret(made.client_id, actor=ACTOR)
    assert previous_until is None
    old = new_agent(made).token()
    assert old.status_code == 401 and old.get_json()["error"] == "invalid_client"
    new = new_agent(dataclasses.replace(made, client_secret=secret)).token()
    assert new.status_code == 200, new.get_json()
    assert count(IssuedToken, client_id=made.client_id) == 2
    assert count(AuditEvent, event_type="token.refused", client_id=made.client_id) == 1


def test_a_refusal_on_a_cached_record_is_answered_from_a_fresh_read_and_written_once(new_agent, app, fresh_reads):
    made = make_client(auth_method="client_secret_basic")
    assert new_agent(made).token().status_code == 200
    assert fresh_reads == [made.client_id]
    response = new_agent(dataclasses.replace(made, client_secret="wrong")).token()
    assert response.status_code == 401
    assert fresh_reads == [made.client_id] * 2
    assert count(AuditEvent, event_type="token.refused", client_id=made.client_id) == 1


def test_no_refusal_rests_on_a_cached_record_when_a_request_names_two_clients(client, app, new_agent):
    """Authlib takes the first method that authenticates. Here the Basic client's cached record
    holds the secret it had before a rotation, and an invalid assertion names another client:
    the request is answered as from fresh reads, where the Basic client authenticates."""
    basic, other = make_client(auth_method="client_secret_basic"), make_client()
    assert new_agent(basic).token().status_code == 200
    secret, _, _ = lifecycle.rotate_secret(basic.client_id, actor=ACTOR)
    form, _ = auth(other, "https://not-this-server.example")
    response = client.post("/token", data={"grant_type": "client_credentials", **form},
                           headers=auth(dataclasses.replace(basic, client_secret=secret), "")[1])
    assert response.status_code == 200, response.get_json()
    assert count(IssuedToken, client_id=basic.client_id) == 2
    assert count(AuditEvent, event_type="token.refused") == 0


def test_an_assertion_answered_again_after_a_change_is_spent_once(new_agent, app, fresh_reads):
    """The stale attempt wrote nothing, its assertion's jti included: the fresh one spends it."""
    made = make_client()
    agent = new_agent(made)
    assert agent.token().status_code == 200
    assert agent.token().status_code == 200  # from the cache
    assert fresh_reads == [made.client_id]
    row = db.session.get(Client, made.client_id)
    row.client_metadata = {**row.client_metadata, "client_name": "renamed elsewhere"}
    db.session.commit()
    assert cached(app, made) is not None
    response = agent.token()
    assert response.status_code == 200, response.get_json()
    assert fresh_reads == [made.client_id] * 2
    assert count(AssertionJti, client_id=made.client_id) == 3
    assert count(IssuedToken, client_id=made.client_id) == 3
    assert cached(app, made).client_metadata["client_name"] == "renamed elsewhere"


def test_a_cached_clients_key_set_is_imported_once(new_agent, app, monkeypatch):
    """The group commit's check keeps the cached record itself while it is unchanged, so the
    key set imported for its first assertion serves the next ones."""
    made, imported, check = make_client(), [], keysets.check_jwks
    monkeypatch.setattr(keysets, "check_jwks", lambda document: imported.append(document) or check(document))
    agent = new_agent(made)
    assert [agent.token().status_code for _ in range(3)] == [200] * 3
    assert len(imported) == 1


def test_the_cache_is_bounded(app, monkeypatch):
    monkeypatch.setattr(clients, "CACHE_SIZE", 2)
    cache, made = clients.ClientCache(), [make_client() for _ in range(3)]
    records = [clients.load_client(m.client_id).row for m in made]
    for record in records:
        cache.put(record)
    assert [cache.usable(m.client_id) is not None for m in made] == [False, False, True]


@pytest.fixture
def service(new_agent):
    """A relying service that introspects: approved as the relying service of the agents' audience."""
    return new_agent(auth_method="client_secret_basic", audiences=("https://api.example.com",),
                     serves=("https://api.example.com",))


@pytest.mark.parametrize("token", ["issued", "garbage"])
def test_a_caller_suspended_elsewhere_gets_no_answer_from_its_cached_record(new_agent, app, service, token):
    """Introspection checks a cached caller in the token's own read; a changed caller is
    answered from a fresh read, even for a token that is not one (no ``active: false``)."""
    issued = new_agent().token().get_json()["access_token"]
    assert service.introspect(issued).get_json()["active"] is True
    assert cached(app, service.made) is not None
    lifecycle.suspend(service.made.client_id, reason="compromised", actor=ACTOR)
    response = service.introspect(issued if token == "issued" else token)
    assert response.status_code == 400 and response.get_json()["error"] == "unauthorized_client"
    assert count(AuditEvent, event_type="introspection.refused", client_id=service.made.client_id) == 1


def test_a_cached_callers_introspection_is_one_read(new_agent, app, service):
    issued = new_agent().token().get_json()["access_token"]
    assert service.introspect(issued).get_json()["active"] is True  # caches the caller
    db.session.remove()  # the test's own session holds no connection: every checkout is seen
    with driver_statements(db.engine) as statements:
        assert service.introspect(issued).get_json()["active"] is True
    assert [s for s in statements if s.startswith("SELECT")] == statements and len(statements) == 1, statements


def test_an_assertion_authenticated_introspection_reads_its_caller_fresh(new_agent, app):
    """Its jti is spent when it authenticates, before the answer: a cached attempt answered
    again would find it spent and refuse the request as a replay."""
    caller = new_agent(audiences=("https://api.example.com",), serves=("https://api.example.com",))
    issued = new_agent().token().get_json()["access_token"]
    assert caller.introspect(issued).get_json()["active"] is True
    response = caller.post("/introspect", {})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request", response.get_json()
    assert caller.introspect(issued).get_json()["active"] is True


def test_the_previous_secret_works_from_the_cache_until_its_grace_ends(new_agent, app, fresh_reads):
    """Rotated with a grace period: the old secret still gets tokens, on the cached record
    too, and stops at its end time even though the cached record still holds its hash."""
    made = make_client(auth_method="client_secret_basic")
    secret, _, until = lifecycle.rotate_secret(made.client_id, actor=ACTOR)
    grace = timedelta(seconds=app.config["SECRET_ROTATION_GRACE"])
    assert abs(until - (clock.now() + grace)) < timedelta(seconds=5)
    assert new_agent(made).token().status_code == 200
    reads = len(fresh_reads)
    assert new_agent(made).token().status_code == 200 and len(fresh_reads) == reads  # from the cache
    assert cached(app, made).previous_secret_until == until
    clock.advance(app.config["SECRET_ROTATION_GRACE"])
    old = new_agent(made).token()
    assert old.status_code == 401 and old.get_json()["error"] == "invalid_client"
    assert new_agent(dataclasses.replace(made, client_secret=secret)).token().status_code == 200
    assert count(IssuedToken, client_id=made.client_id) == 3
