"""The pending queue in pages of whole groups (app.console.queries.pending_page): how many are
pending, every registration on exactly one page, a group kept whole while it fits in a page,
a group larger than a page cut in parts, largest first."""
import pytest

from app.console import queries
from app.console.queries import pending_page

from .console_helpers import Console
from .factories import clone_clients, make_client


@pytest.fixture
def console(client):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    return console


def flood(n, software_id, address="198.51.100.7"):
    """``n`` pending registrations of one self-asserted group (software, address), oldest first:
    one registered, the others copied from it (``clone_clients``, created before it)."""
    made = make_client(status="pending", address=address, software_id=software_id, client_name=software_id)
    return [*clone_clients(made, n - 1, client_name=software_id + " {i}"), made.client_id]


def test_pages_hold_whole_groups_and_every_registration_once(app):
    big = flood(7, "flooder")                               # larger than a page of 5
    middle = flood(3, "middling", address="192.0.2.3")
    small = [flood(2, f"pair-{i}", address=f"192.0.2.{10 + i}") for i in range(3)]
    lone = make_client(status="pending", address="192.0.2.99", client_name="lone").client_id
    first = pending_page(1, page_size=5)
    assert (first.total, first.group_count, first.pages) == (7 + 3 + 6 + 1, 6, 4)
    pages = [pending_page(n, page_size=5) for n in range(1, first.pages + 1)]
    shown = [[(g.software_id or g.clients[0].client_name, g.first, [c.client_id for c in g.clients])
              for g in page.groups] for page in pages]
    assert shown == [
        [("flooder", 1, big[:5])],                          # the largest first, cut in parts
        [("flooder", 6, big[5:]), ("middling", 1, middle)],  # its last part shares a page
        [("pair-0", 1, small[0]), ("pair-1", 1, small[1])],  # a group that does not fit waits
        [("pair-2", 1, small[2]), ("lone", 1, [lone])],
    ]
    every = [i for page in shown for _, _, ids in page for i in ids]
    assert sorted(every) == sorted([*big, *middle, *(i for pair in small for i in pair), lone]) and len(every) == len(set(every))
    assert all(len(ids) <= 5 for page in shown for _, _, ids in page)
    assert [g.size for g in pages[1].groups] == [7, 3]


def test_a_page_past_the_last_shows_the_last(app):
    flood(3, "flooder")
    assert pending_page(9, page_size=2).page == 2


def test_the_queue_page_says_how_many_and_links_the_pages(console, monkeypatch):
    monkeypatch.setattr(queries, "PENDING_PAGE", 4)
    big = flood(6, "flooder")
    other = make_client(status="pending", address="192.0.2.9", client_name="lonely agent").client_id
    html = console.client.get("/console/pending").get_data(as_text=True)
    assert "7 registrations pending in 2 groups; page 1 of 2, 4 shown." in html
    assert "— 6 registrations" in html and "(1–4 on this page)" in html
    assert all(c in html for c in big[:4]) and big[4] not in html and "lonely agent" not in html
    assert 'href="/console/pending?page=2" rel="next"' in html
    assert "Deny all 6 registrations in this group…" in html  # the whole group, on every page
    second = console.client.get("/console/pending?page=2").get_data(as_text=True)
    assert "(5–6 on this page)" in second and all(c in second for c in big[4:]) and big[0] not in second
    assert other in second and "— 1 registration\n" in second  # the flood's last part leaves room


@pytest.mark.parametrize("page", ["0", "-1", "two", "1.5"])
def test_a_malformed_page_number_is_refused(console, page):
    flood(2, "flooder")
    response = console.client.get(f"/console/pending?page={page}")
    assert response.status_code == 400
    assert "the page number must be a positive whole number" in response.get_data(as_text=True)
