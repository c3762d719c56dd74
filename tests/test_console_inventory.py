"""The inventory: search, filters and sort in SQL over every client, paged, with its count."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.registration import inventory as queries
from app.registration.inventory import InventoryFilter
from app.extensions import db
from app.models import Client, IssuedToken
from app.support import clock

from .console_helpers import Console, unlabelled
from .factories import add_publisher, clone_clients, make_client, software_statement


@pytest.fixture
def console(client):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    return console


def issue_token(client_id, at):
    db.session.add(IssuedToken(jti=f"jti-{client_id}-{at.timestamp()}", client_id=client_id, subject=client_id,
                               scope="read", audience=[], grant_type="client_credentials", issued_at=at,
                               expires_at=at + timedelta(minutes=5)))
    db.session.commit()


def names(page: str) -> list[str]:
    return re.findall(r'<a href="/console/clients/[^"]+">([^<]+)</a>', page)


def test_a_search_finds_a_client_older_than_any_page_or_former_limit(console):
    """The old inventory read the 500 newest and filtered them: an older client was "not found"."""
    old = make_client(status="active", client_name="needle agent")
    db.session.get(Client, old.client_id).created_at = clock.now() - timedelta(days=400)
    db.session.commit()
    clone_clients(make_client(status="active", client_name="hay"), 620, client_name="hay {i}")
    page = console.client.get("/console/inventory?q=needle").get_data(as_text=True)
    assert names(page) == ["needle agent"] and "1 client matches." in page
    everything = console.client.get("/console/inventory").get_data(as_text=True)
    assert "622 clients match; page 1 of 13, 50 shown." in everything
    assert len(names(everything)) == queries.INVENTORY_PAGE and "needle agent" not in everything
    last = console.client.get("/console/inventory?page=13").get_data(as_text=True)
    assert "needle agent" in names(last)  # the oldest, last of the newest-first order
    assert len(names(last)) == 622 - 12 * 50


def test_pages_cover_every_client_once_in_every_sort(app):
    clone_clients(make_client(status="active"), 23, client_name="agent {i}")
    for i in (3, 9):
        issue_token(db.session.scalar(select(Client.client_id).where(Client.client_name == f"agent {i}")),
                    clock.now() - timedelta(hours=i))
    for sort in queries.SORTS:
        seen = []
        for number in (1, 2, 3):
            seen += [r.client.client_id for r in queries.inventory(InventoryFilter(sort=sort, page=number),
                                                                   page_size=10).rows]
        assert len(seen) == len(set(seen)) == 24, sort
    by_name = [r.client.client_name for r in queries.inventory(InventoryFilter(sort="name"), page_size=3).rows]
    assert by_name == ["agent 0", "agent 1", "agent 10"]
    by_use = [r.client.client_name for r in queries.inventory(InventoryFilter(sort="last_token"), page_size=3).rows]
    assert by_use[:2] == ["agent 3", "agent 9"]  # the most recent use first, the never used after


@pytest.mark.parametrize("term, expected", [
    ("NEEDLE", "by name, in any case"),
    ("team-thimble", "by owner"),
    ("bobbin-soft", "by software id"),
    ("spindle.example", "by the host of its URLs"),
    ("203.0.113.77", "by the address it registered from"),
])
def test_search_by_every_identifying_field(app, term, expected):
    who = {"by name, in any case": make_client(status="pending", client_name="Needle"),
           "by software id": make_client(status="pending", software_id="bobbin-soft"),
           "by the host of its URLs": make_client(status="pending", client_uri="https://spindle.example/"),
           "by the address it registered from": make_client(status="pending", address="203.0.113.77")}
    owned = make_client(status="active")
    db.session.get(Client, owned.client_id).approval.owner = "team-thimble"
    db.session.commit()
    who["by owner"] = owned
    make_client(status="active", client_name="unrelated")
    found = [r.client.client_id for r in queries.inventory(InventoryFilter(search=term)).rows]
    assert found == [who[expected].client_id]


def test_search_by_client_id_and_publisher_and_wildcards_are_literal(app):
    _, key = add_publisher(issuer="https://publisher.example.com")
    verified = make_client(status="pending", software_statement=software_statement(key))
    plain = make_client(status="pending", client_name="100% agent")
    make_client(status="pending", client_name="1000 agent")
    assert [r.client.client_id for r in queries.inventory(InventoryFilter(search="publisher.example")).rows] \
        == [verified.client_id]
    assert [r.client.client_id for r in queries.inventory(InventoryFilter(search=plain.client_id[4:20])).rows] \
        == [plain.client_id]
    assert [r.client.client_id for r in queries.inventory(InventoryFilter(search="100%")).rows] == [plain.client_id]
    assert queries.inventory(InventoryFilter(search="_")).total == 0


def test_filters_by_status_assurance_review_expiry_and_last_use(app):
    active = make_client(status="active", client_name="active one")
    make_client(status="pending", client_name="pending one")
    make_client(status="suspended", client_name="suspended one")
    used = make_client(status="active", client_name="used one")
    issue_token(used.client_id, clock.now() - timedelta(days=2))
    old_use = make_client(status="active", client_name="old use")
    issue_token(old_use.client_id, clock.now() - timedelta(days=45))
    db.session.get(Client, active.client_id).approval.assurance_level = 2
    db.session.commit()

    def found(**wanted):
        return sorted(r.client.client_name for r in queries.inventory(InventoryFilter(**wanted)).rows)
    assert found(status="pending") == ["pending one"]
    assert found(assurance=2) == ["active one"]
    assert found(last_used="never") == ["active one", "pending one", "suspended one"]
    assert found(last_used="within", unused_days=30) == ["used one"]
    assert found(last_used="not_within", unused_days=30) == ["active one", "old use", "pending one",
                                                             "suspended one"]
    assert found(flag="unused", unused_days=30) == ["old use"]
    assert found(flag="never_used") == ["active one"]
    assert found(flag="review_overdue") == [] and found(flag="expired") == []
    clock.advance(31 * 86400)  # past the factory's review date (30 days), before expiry (90)
    assert found(flag="review_overdue") == ["active one", "old use", "suspended one", "used one"]
    clock.advance(60 * 86400)
    assert found(flag="expired") == ["active one", "old use", "suspended one", "used one"]
    assert found(flag="expired", search="old") == ["old use"]  # filters and search combine


def test_the_sql_flags_agree_with_the_flags_shown(app):
    """Each row's flags (Python) and the filter's flags (SQL) are one rule written twice."""
    make_client(status="active", client_name="no use")
    make_client(status="active", auth_method="client_secret_basic", client_name="secret")
    make_client(status="suspended")
    made = make_client(status="active", client_name="ownerless")
    db.session.get(Client, made.client_id).approval.owner = "  "
    used = make_client(status="active")
    issue_token(used.client_id, clock.now() - timedelta(days=40))
    make_client(status="pending")
    make_client(status="expired")  # moves the clock two days on
    for days in (0, 35, 200):
        clock.advance(days * 86400)
        rows = queries.inventory(InventoryFilter(), page_size=100).rows
        for flag in queries.FLAGS:
            shown = {r.client.client_id for r in rows if flag in r.flags}
            filtered = {r.client.client_id for r in queries.inventory(InventoryFilter(flag=flag), page_size=100).rows}
            assert shown == filtered, (days, flag)


@pytest.mark.parametrize("query, field", [
    ("unused_days=0", "unused_days"), ("unused_days=many", "unused_days"), ("status=gone", "status"),
    ("assurance=9", "assurance"), ("sort=random", "sort"), ("last_used=sometimes", "last_used"),
    ("page=0", "page"), ("q=" + "x" * 201, "q"),
])
def test_a_malformed_filter_is_refused_and_shows_no_clients(console, query, field):
    make_client(status="active", client_name="visible agent")
    response = console.client.get(f"/console/inventory?{query}")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "The filter is not valid" in page and "visible agent" not in page


def test_the_inventory_page_is_labelled_and_pages_link_on(console):
    clone_clients(make_client(status="active"), 60, client_name="agent {i}")
    page = console.client.get("/console/inventory?q=agent&sort=name").get_data(as_text=True)
    assert unlabelled(page) == ([], [], [])
    assert 'href="/console/inventory?page=2&amp;q=agent&amp;sort=name"' in page
    second = console.client.get("/console/inventory?page=2&q=agent&sort=name").get_data(as_text=True)
    assert "page 2 of 2, 11 shown" in second
    assert console.client.get("/console/inventory?page=99").status_code == 200  # the last page
