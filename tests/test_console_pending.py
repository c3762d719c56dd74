"""The pending queue: grouped by what identifies an agent, with warnings of impersonation and
look-alike names."""
import pytest

from app.console import lookalikes
from app.console.queries import pending_groups, pending_warnings, source_host
from app.extensions import db
from app.models import Client

from .console_helpers import Console
from .factories import add_publisher, make_client, software_statement

CYRILLIC_A = "\u0410"  # looks like the Latin A
GREEK_ALPHA = "\u0391"


@pytest.fixture
def console(client):
    console = Console(client).create_admin()
    assert console.login().status_code == 303
    return console


def groups_of(*client_ids):
    """For each group of the queue, the set of given clients it holds (groups of none left out)."""
    found = [{c.client_id for c in g.clients} & set(client_ids) for g in pending_groups()]
    return sorted((s for s in found if s), key=len, reverse=True)


def test_two_agents_from_one_address_are_two_groups(app):
    """Grouping by address alone would put every agent behind one NAT in one group, and one
    "deny the group" would deny them all."""
    mail = [make_client(status="pending", address="198.51.100.7", client_uri="https://mail.example/").client_id
            for _ in range(2)]
    crm = make_client(status="pending", address="198.51.100.7", client_uri="https://crm.example/").client_id
    claimed = make_client(status="pending", address="198.51.100.7", software_id="reporter").client_id
    assert groups_of(*mail, crm, claimed) == [set(mail), {crm}, {claimed}]
    heading = {g.host: g for g in pending_groups()}
    assert heading["mail.example"].address == "198.51.100.7" and not heading["mail.example"].verified


def test_the_same_software_from_two_addresses_is_two_self_asserted_groups_but_one_verified(app):
    _, key = add_publisher()
    verified = [make_client(status="pending", address=address, software_statement=software_statement(key)).client_id
                for address in ("192.0.2.1", "192.0.2.2")]
    claimed = [make_client(status="pending", address=address, software_id="acme-agent").client_id
               for address in ("192.0.2.1", "192.0.2.2")]
    assert groups_of(*verified, *claimed) == [set(verified), {claimed[0]}, {claimed[1]}]


def test_the_source_host_comes_from_the_urls_the_client_registered(app):
    def host(**metadata):
        return source_host(db.session.get(Client, make_client(status="pending", **metadata).client_id))
    assert host(jwks_uri="https://Keys.Example/jwks.json", client_uri="https://home.example/") == "keys.example"
    assert host(auth_method="client_secret_basic", client_uri="https://home.example/") == "home.example"
    assert host() is None


def test_a_self_asserted_claim_to_a_verified_software_id_or_name_is_flagged(console):
    _, key = add_publisher()
    make_client(status="active", software_statement=software_statement(key))  # Acme Agent, acme-agent
    by_id = make_client(status="pending", software_id="acme-agent", client_name="something else").client_id
    by_name = make_client(status="pending", client_name="Acme Agent").client_id
    look_alike = make_client(status="pending", client_name=f"{CYRILLIC_A}cme Agent").client_id
    innocent = make_client(status="pending", client_name="Other Agent", software_id="other").client_id
    verified_again = make_client(status="pending", software_statement=software_statement(key)).client_id
    warnings = pending_warnings(list(db.session.scalars(db.select(Client).where(Client.status == "pending"))))
    publisher = "https://publisher.example.com"
    assert warnings[by_id] == [f"possible impersonation: its software_id is that of a client of verified "
                               f"publisher {publisher}"]
    assert warnings[by_name] == [f"possible impersonation: its name is that of a client of verified "
                                 f"publisher {publisher}"]
    assert warnings[look_alike][0] == (f"possible impersonation: its name looks like that of a client of "
                                       f"verified publisher {publisher}")
    assert "mixed scripts in the name" in warnings[look_alike]
    assert innocent not in warnings and verified_again not in warnings
    page = console.client.get("/console/pending").get_data(as_text=True)
    assert page.count("possible impersonation") == 3


def test_a_denied_verified_client_lends_its_name_to_nobody(app):
    _, key = add_publisher()
    make_client(status="denied", software_statement=software_statement(key))
    claimed = make_client(status="pending", software_id="acme-agent").client_id
    assert claimed not in pending_warnings([db.session.get(Client, claimed)])


def test_mixed_script_and_confusable_names_are_flagged(console):
    greek = make_client(status="pending", client_name=f"P{GREEK_ALPHA}yroll bot").client_id
    russian = make_client(status="pending", client_name="Отчёты").client_id  # one script: not flagged
    page = console.client.get("/console/pending").get_data(as_text=True)
    row = page[page.index(greek):].split("</tr>")[0]
    assert "mixed scripts in the name" in row and "looks like &#39;A&#39;" in row and "(Greek)" in row
    assert "mixed scripts" not in page[page.index(russian):].split("</tr>")[0]


@pytest.mark.parametrize("one, other, alike", [
    ("Acme", "acme", True),
    (f"{CYRILLIC_A}cme", "Acme", True),
    ("\uff21cme", "Acme", True),  # full-width A
    ("Acme", "Acne", False),
    ("", "Acme", False),
])
def test_skeletons(one, other, alike):
    assert (lookalikes.skeleton(one) == lookalikes.skeleton(other)) is alike


def test_warnings_of_plain_and_empty_names():
    assert lookalikes.warnings("Acme Agent") == [] and lookalikes.warnings(None) == []
    assert lookalikes.warnings("\u0410cme")[0] == "mixed scripts in the name"
