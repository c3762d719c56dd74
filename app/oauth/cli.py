"""``ostiary task …`` and ``ostiary workload-issuer …``: thin commands over the token services."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click
from flask.cli import with_appcontext

from ..cli import fail, cli_actor
from . import tokens, workload

log = logging.getLogger(__name__)


@click.group("task")
def task_group():
    """Agent tasks and their tokens."""


@task_group.command("end")
@click.argument("task_id")
@click.option("--outcome", type=click.Choice(["ended", "done", "failed"]), default="ended", show_default=True)
@with_appcontext
def task_end(task_id: str, outcome: str):
    """End a task: every token issued for it (and exchanged from those) is revoked now."""
    try:
        revoked = tokens.end_task(task_id, outcome=outcome, actor=cli_actor())
    except tokens.TaskError as exc:
        fail(str(exc))
    click.echo(f"task {task_id} ended ({outcome}); {len(revoked)} token(s) revoked")


@click.group("workload-issuer")
def workload_issuer_group():
    """Workload-identity issuers whose JWTs are accepted as token-exchange subject tokens."""


@workload_issuer_group.command("add")
@click.argument("issuer")
@click.option("--audience", required=True, help="The aud its tokens must carry for this server.")
@click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False), help="Its JWK Set, as a file.")
@click.option("--jwks-uri", help="Where its JWK Set is published (https).")
@click.option("--alg", "algorithms", multiple=True, help="Accepted algorithm (repeat); default ES256, RS256.")
@click.option("--subject-pattern", help="Only subjects matching this pattern (* ? wildcards).")
@with_appcontext
def workload_issuer_add(issuer, audience, jwks_file, jwks_uri, algorithms, subject_pattern):
    """Trust ISSUER's workload JWTs (SPIFFE JWT-SVID, Kubernetes, CI OIDC) as subject tokens."""
    jwks = None
    if jwks_file:
        try:
            jwks = json.loads(Path(jwks_file).read_text())
        except ValueError:
            fail(f"{jwks_file} is not JSON")
    try:
        workload.add_issuer(issuer=issuer, audience=audience, jwks=jwks, jwks_uri=jwks_uri,
                            algorithms=list(algorithms) or None, subject_pattern=subject_pattern,
                            actor=cli_actor())
    except workload.WorkloadIssuerError as exc:
        fail(str(exc))
    click.echo(f"trusting workload issuer {issuer} (audience {audience})")


@workload_issuer_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def workload_issuer_list(as_json: bool):
    items = [{"issuer": r.issuer, "audience": r.audience, "jwks_uri": r.jwks_uri,
              "inline_keys": len((r.jwks or {}).get("keys", [])), "algorithms": r.algorithms,
              "subject_pattern": r.subject_pattern, "created_at": r.created_at.isoformat()}
             for r in workload.list_issuers()]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for item in items:
        keys = item["jwks_uri"] or f"{item['inline_keys']} inline key(s)"
        click.echo(f"{item['issuer']}  aud={item['audience']}  keys={keys}  "
                   f"algs={','.join(item['algorithms'])}  subjects={item['subject_pattern'] or '*'}")


@workload_issuer_group.command("remove")
@click.argument("issuer")
@with_appcontext
def workload_issuer_remove(issuer: str):
    try:
        workload.remove_issuer(issuer, actor=cli_actor())
    except workload.WorkloadIssuerError as exc:
        fail(str(exc))
    click.echo(f"no longer trusting workload issuer {issuer}")


COMMANDS = (task_group, workload_issuer_group)
