"""``ostiary client suspend`` and ``ostiary registration deny`` over many clients: several ids, or
``--matching`` with the inventory's filters (its own query, app.registration.inventory); every client
listed before anything changes, asked unless ``--yes``, each change its own audit event."""
import pytest

from app.extensions import db
from app.models import Client

from .factories import clone_clients, events, make_client


def statuses(client_ids):
    db.session.expire_all()
    return [db.session.get(Client, c).status for c in client_ids]


def fleet(n, name="fleet"):
    made = make_client(status="active", client_name=f"{name} x")
    return [*clone_clients(made, n - 1, client_name=name + " {i}"), made.client_id]


def test_suspending_several_ids_lists_them_and_suspends_each_audited(runner):
    chosen = fleet(3)
    spared = make_client(status="active").client_id
    result = runner.invoke(args=["client", "suspend", *chosen, "--reason", "owner left", "--yes"])
    assert result.exit_code == 0, result.output
    assert "Suspend 3 clients (the tokens they hold stop being valid" in result.output
    assert all(f"suspended {c}" in result.output for c in chosen) and "suspended 3 client(s)" in result.output
    assert statuses(chosen) == ["suspended"] * 3 and statuses([spared]) == ["active"]
    assert [(e.client_id, e.reason) for e in events("client.suspended")] == [(c, "owner left") for c in chosen]
    assert {e.actor for e in events("client.suspended")} == {f"cli:{__import__('getpass').getuser()}"}


@pytest.mark.parametrize("answer", [None, "n\n", "\n"])
def test_without_yes_it_lists_what_it_would_change_and_a_no_changes_nothing(runner, answer):
    chosen = fleet(2)
    result = runner.invoke(args=["client", "suspend", *chosen], input=answer)
    assert result.exit_code == 1 and "Aborted" in result.output
    assert all(f"active    {c}  fleet" in result.output for c in chosen) and "Continue?" in result.output
    assert statuses(chosen) == ["active"] * 2 and events("client.suspended") == []


def test_a_yes_answer_goes_on(runner):
    chosen = fleet(2)
    result = runner.invoke(args=["client", "suspend", *chosen], input="y\n")
    assert result.exit_code == 0 and statuses(chosen) == ["suspended"] * 2


def test_matching_uses_the_inventorys_filters(runner):
    matched = fleet(4)
    others = [make_client(status="active", client_name="other").client_id,
              make_client(status="pending", client_name="fleet pending").client_id]
    result = runner.invoke(args=["client", "suspend", "--matching", "--search", "fleet", "--reason", "decommissioned",
                                 "--yes"])
    assert result.exit_code == 0, result.output
    assert "Suspend 4 clients" in result.output
    assert "not changed: 1 other matching client(s), not active" in result.output
    assert statuses(matched) == ["suspended"] * 4 and statuses(others) == ["active", "pending"]
    assert sorted(events("client.suspended", only="client_id")) == sorted(matched)


def test_denying_every_pending_registration_of_a_flag_or_search(runner):
    flood = [make_client(status="pending", address="198.51.100.7", software_id="flooder").client_id
             for _ in range(3)]
    kept = make_client(status="pending", address="192.0.2.9").client_id
    result = runner.invoke(args=["registration", "deny", "--matching", "--search", "198.51.100.7",
                                 "--reason", "registration flood", "--yes"])
    assert result.exit_code == 0, result.output
    assert "Deny 3 clients (they will never be approved)" in result.output
    assert statuses(flood) == ["denied"] * 3 and statuses([kept]) == ["pending"]
    assert [(e.client_id, e.reason) for e in events("client.denied")] == [(c, "registration flood") for c in flood]


def test_ids_it_cannot_change_are_named_and_the_exit_status_says_so(runner):
    active = make_client(status="active").client_id
    pending = make_client(status="pending").client_id
    result = runner.invoke(args=["client", "suspend", active, pending, "nope", "--yes"])
    assert result.exit_code == 1
    assert f"not changed: {pending} is pending: only active clients can be suspended" in result.output
    assert "not changed: nope: there is no such client" in result.output
    assert statuses([active, pending]) == ["suspended", "pending"]


def test_the_matching_set_changing_while_asked_changes_nothing(runner, app, monkeypatch):
    matched = fleet(2)
    import click

    def meanwhile(*args, **kwargs):
        make_client(status="active", client_name="fleet newcomer")
        return True
    monkeypatch.setattr(click, "confirm", meanwhile)
    result = runner.invoke(args=["client", "suspend", "--matching", "--search", "fleet"])
    assert result.exit_code == 1
    assert "the matching clients changed while you were asked (2 then, 3 now); nothing was changed" in result.output
    assert statuses(matched) == ["active"] * 2 and events("client.suspended") == []


@pytest.mark.parametrize("args, message", [
    (["client", "suspend"], "name at least one client id, or --matching"),
    (["client", "suspend", "x", "y", "--matching"], "give client ids or --matching, not both"),
    (["client", "suspend", "x", "y", "--search", "fleet"], "--search selects clients only with --matching"),
    (["client", "suspend", "x", "--flag", "never_used"], "--flag selects clients only with --matching"),
    (["client", "suspend", "--matching", "--search", "nothing like it"], "no client to suspend"),
    (["registration", "deny", "--matching", "--reason", "r"], "no client to deny"),
])
def test_options_that_do_not_go_together_change_nothing(runner, args, message):
    made = make_client(status="active").client_id
    result = runner.invoke(args=args + ["--yes"])
    assert result.exit_code == 1 and message in result.output, result.output
    assert statuses([made]) == ["active"]


@pytest.mark.parametrize("args", [["--flag", "bogus"], ["--status", "nope"], ["--unused-days", "0"]])
def test_a_malformed_filter_is_a_usage_error(runner, args):
    made = make_client(status="active").client_id
    result = runner.invoke(args=["client", "suspend", "--matching", *args, "--yes"])
    assert result.exit_code == 2 and statuses([made]) == ["active"]
