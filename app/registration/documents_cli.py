"""``ostiary document …`` (clients named by a metadata document: the cached document, when it
was fetched, refresh now) and ``ostiary document-publisher …`` (trusted publishers of documents),
thin commands over ``app.registration.documents`` and ``app.trust.document_publishers``."""
from __future__ import annotations

import json

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.extensions import db
from app.models import Client, ClientDocument
from app.registration import documents
from app.registration.metadata import escape_display
from app.support.cli import actor, emit, fail, failing_on
from app.trust import document_publishers


def document_summary(stored: ClientDocument, client: Client | None = None) -> dict:
    """What a reviewer reads of a document client's document (also in ``registration show``)."""
    return {"url": stored.client_id, "status": client.status if client is not None else None,
            "fetched_at": stored.fetched_at.isoformat(), "fresh_until": stored.fresh_until.isoformat(),
            "checked_at": stored.checked_at.isoformat(), "error": stored.error, "document": stored.document}


@click.group("document")
def document_group():
    """Clients whose client_id is the URL of their metadata document (CIMD)."""


@document_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def document_list(as_json):
    rows = db.session.execute(select(ClientDocument, Client).join(Client, Client.client_id == ClientDocument.client_id)
                              .order_by(ClientDocument.client_id)).all()
    items = [{**document_summary(stored, client), "client_name": client.client_name} for stored, client in rows]
    for item in items:
        del item["document"]
    emit(items, as_json, lambda item: (
        f"{item['status']:<9} {escape_display(item['url'])}  {escape_display(item['client_name'])}  fetched {item['fetched_at']}"
        f"{'  ERROR: ' + escape_display(item['error']) if item['error'] else ''}"))


@document_group.command("show")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def document_show(url, as_json):
    stored = db.session.get(ClientDocument, url)
    if stored is None:
        fail(f"no client of a metadata document at {url!r}")
    _print(document_summary(stored, db.session.get(Client, url)), as_json)


@document_group.command("add")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def document_add(url, as_json):
    """Fetch the document of a client not seen yet (a machine agent, which never visits
    /authorize) and make it a pending registration, or approve it by a trusted publisher's rule."""
    with failing_on(documents.DocumentError):
        stored = documents.add(url, actor=actor())
    _print(document_summary(stored, db.session.get(Client, url)), as_json)


@document_group.command("refresh")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def document_refresh(url, as_json):
    """Fetch the document now, whatever its cache time, and apply what changed."""
    with failing_on(documents.DocumentError):
        stored = documents.refresh(url, actor=actor())
    _print(document_summary(stored, db.session.get(Client, url)), as_json)


def _print(item: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(item, indent=2))
        return
    for name, value in item.items():
        if name != "document":
            click.echo(f"{name + ':':<13} {escape_display(value) if isinstance(value, str) else value}")
    click.echo("document (as published, not verified beyond the checks of a registration):")
    click.echo(escape_display(json.dumps(item["document"], indent=2, ensure_ascii=False)))


@click.group("document-publisher")
def document_publisher_group():
    """Trusted publishers of metadata documents: documents under a URL prefix are approved by
    policy, within a ceiling."""


@document_publisher_group.command("add")
@click.argument("prefix")
@click.option("--owner", required=True, help="The person or team accountable for these agents.")
@click.option("--scope", "scopes", required=True, multiple=True, help="The most it may approve (repeatable).")
@click.option("--audience", "audiences", required=True, multiple=True,
              help="A resource URI it may approve (repeatable).")
@click.option("--days", "approval_days", type=int, default=None,
              help="How long each approval lasts; default OSTIARY_APPROVAL_DAYS.")
@click.option("--assurance", "assurance_level", type=int, default=1, show_default=True)
@click.option("--proofing-method", required=True,
              help="How you proofed the publisher, which its approvals record (config/scopes.toml); "
                   "never assumed.")
@click.option("--confirm-sensitive", is_flag=True, help="The scopes include sensitive ones, and you mean it.")
@with_appcontext
def publisher_add(prefix, owner, scopes, audiences, approval_days, assurance_level, proofing_method,
                  confirm_sensitive):
    """Trust the documents at URLs under PREFIX (https://apps.example.com/agents/)."""
    scopes = [name for value in scopes for name in value.split()]
    with failing_on(document_publishers.DocumentPublisherError):
        rule = document_publishers.add(
            prefix, owner=owner, scopes=scopes, audiences=list(audiences),
            approval_days=approval_days or document_publishers.default_days(), assurance_level=assurance_level,
            proofing_method=proofing_method, actor=actor(), sensitive_confirmed=confirm_sensitive)
    click.echo(f"trusting documents under {rule.prefix}: scopes {' '.join(rule.scopes)}, audiences "
               f"{', '.join(rule.audiences)}, {rule.approval_days} days, assurance {rule.assurance_level}")


@document_publisher_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def publisher_list(as_json):
    items = [{"id": rule.id, "prefix": rule.prefix, "owner": rule.owner, "scopes": rule.scopes,
              "audiences": rule.audiences, "approval_days": rule.approval_days,
              "assurance_level": rule.assurance_level, "proofing_method": rule.proofing_method,
              "created_by": rule.created_by, "created_at": rule.created_at.isoformat()}
             for rule in document_publishers.listed()]
    emit(items, as_json, lambda item: (
        f"{escape_display(item['prefix'])}  owner={escape_display(item['owner'])}  scopes={','.join(item['scopes'])}  "
        f"audiences={','.join(item['audiences'])}  days={item['approval_days']}  assurance={item['assurance_level']}"))


@document_publisher_group.command("remove")
@click.argument("prefix")
@with_appcontext
def publisher_remove(prefix):
    """No longer trust PREFIX; the clients it approved keep their approvals."""
    with failing_on(document_publishers.DocumentPublisherError):
        document_publishers.remove(prefix, actor=actor())
    click.echo(f"no longer trusting documents under {escape_display(prefix)}")
