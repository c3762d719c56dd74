"""Resource identifiers compared one way (app.support.resources, RFC 3986 §6.2.2.1 and §6.2.3)
wherever a requested resource meets what an approval or a token holds: client credentials,
token exchange, the authorization request; a refusal names what the approval holds."""
import jwt as pyjwt
import pytest

from app.policy import within_approval
from app.support.resources import match, normalise

from . import test_authorization_code as person_flow
from .token_actions import BOTH_GRANTS, task

MCP = "https://mcp.example.com/mcp"
person = person_flow.person  # the fixture: Alice, signed in


@pytest.mark.parametrize("spelling, normal", [
    ("HTTPS://MCP.Example.COM/mcp", "https://mcp.example.com/mcp"),
    ("https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp"),
    ("http://127.0.0.1:80", "http://127.0.0.1/"),
    ("https://mcp.example.com", "https://mcp.example.com/"),
    ("https://mcp.example.com:8443/a%2fb?x=%2f", "https://mcp.example.com:8443/a%2Fb?x=%2F"),
    ("http://[::1]:8080/mcp", "http://[::1]:8080/mcp"),
    ("https://mcp.example.com/MCP", "https://mcp.example.com/MCP"),  # the path keeps its case
    ("https://mcp.example.com/mcp/", "https://mcp.example.com/mcp/"),  # and its trailing slash
    ("urn:example:reports", "urn:example:reports"),  # not a URL with an authority: as it is
    ("reports-api", "reports-api"),  # an RFC 8693 logical audience name: as it is
    ("https://mcp.example.com:notaport/", "https://mcp.example.com:notaport/"),
    # what urlsplit would quietly rewrite before reading compares as it is, so it matches nothing
    ("https://mcp.exa\tmple.com/mcp", "https://mcp.exa\tmple.com/mcp"),
    (" https://mcp.example.com/mcp", " https://mcp.example.com/mcp"),
    ("https://mcp.example.com/mcp\n", "https://mcp.example.com/mcp\n"),
    ("https://mcp.example.com/mcp#part", "https://mcp.example.com/mcp#part"),
    ("https://mcp.example.com/mcp?", "https://mcp.example.com/mcp?"),
    ("https://@mcp.example.com/mcp", "https://@mcp.example.com/mcp"),
])
def test_normalise(spelling, normal):
    assert normalise(spelling) == normal


def test_match_gives_the_holders_spelling():
    assert match(["HTTPS://MCP.EXAMPLE.COM:443/mcp", "https://other.example"], [MCP]) == (
        [MCP], ["https://other.example"])
    assert match(["https://mcp.example.com/mcp/"], [MCP]) == ([], ["https://mcp.example.com/mcp/"])


def test_the_approval_refusal_names_what_it_holds():
    decision = within_approval(approved_scopes=["read"], approved_audiences=[MCP, "https://api.example.com"],
                               scopes=[], audiences=["https://mcp.example.com/other"])
    assert not decision.allowed and decision.error == "invalid_target"
    assert decision.reason == ("resource https://mcp.example.com/other is not in the client's approval, which "
                               f"holds {MCP} https://api.example.com")


def test_client_credentials_compares_normalised_and_grants_as_approved(new_agent):
    agent = new_agent(audiences=(MCP,))
    response = agent.token(resource="HTTPS://Mcp.Example.com:443/mcp")
    assert response.status_code == 200, response.get_json()
    assert pyjwt.decode(response.get_json()["access_token"], options={"verify_signature": False})["aud"] == MCP
    refused = agent.token(resource="https://mcp.example.com/MCP").get_json()
    assert refused["error"] == "invalid_target" and f"which holds {MCP}" in refused["error_description"]


def test_token_exchange_compares_normalised(new_agent):
    agent = new_agent(grant_types=BOTH_GRANTS, audiences=(MCP, "https://api.example.com"))
    held = agent.token().get_json()["access_token"]
    response = agent.exchange(held, resource="https://MCP.example.com:443/mcp", authorization_details=task())
    assert response.status_code == 200, response.get_json()
    assert pyjwt.decode(response.get_json()["access_token"], options={"verify_signature": False})["aud"] == MCP
    narrow = agent.exchange(held, resource=MCP, authorization_details=task()).get_json()["access_token"]
    refused = agent.exchange(narrow, resource="https://api.example.com", authorization_details=task()).get_json()
    assert refused["error"] == "invalid_target"
    assert f"is not an audience of the subject_token, which holds {MCP}" in refused["error_description"]


def test_the_person_grants_compare_normalised_too(client, person):
    """The authorization request and the code's refresh tokens: one comparison, as above; and a
    refused scope is echoed safely (a quote in it is no 500)."""
    made = person_flow.person_agent()
    code, verifier = person_flow.code_for(client, made, resource="HTTPS://API.example.com:443")
    first = person_flow.redeem(client, made, code, verifier, resource="https://api.EXAMPLE.com").get_json()
    assert person_flow.jwt_claims(first["access_token"])["aud"] == "https://api.example.com", first
    refreshed = person_flow.refresh(client, made, first["refresh_token"],
                                    resource="https://api.example.com:443/").get_json()
    assert person_flow.jwt_claims(refreshed["access_token"])["aud"] == "https://api.example.com", refreshed
    body = person_flow.refresh(client, made, refreshed["refresh_token"],
                               resource="https://api.example.com/other").get_json()
    assert body["error"] == "invalid_target" and "granted: https://api.example.com" in body["error_description"]
    quoted = person_flow.refresh(client, made, refreshed["refresh_token"], scope='read "admin"')
    assert quoted.status_code == 400 and quoted.get_json() == {
        "error": "invalid_grant", "error_description": "scope ?admin? was not granted by the person; granted: read"}
