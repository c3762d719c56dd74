"""``ostiary publisher …`` and ``ostiary workload-issuer …``: the two kinds of trusted issuer,
one set of commands (add, list, remove) over ``app.trust.issuers``."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.support.cli import actor, emit, failing_on, read_json
from app.trust import issuers


def issuer_group(kind: issuers.Kind, name: str, help: str, options: list, shown: tuple[str, ...],
                 done) -> click.Group:
    """A command group for ``kind``: ``options`` are the kind's own fields for ``add``, ``shown``
    the ones ``list`` shows, ``done(row)`` what ``add`` prints."""
    group = click.Group(name, help=help)

    @with_appcontext
    def add(issuer, jwks_file, jwks_uri, algorithms, **fields):
        jwks = read_json(jwks_file) if jwks_file else None
        with failing_on(issuers.TrustError):
            row = issuers.add(kind, issuer, jwks=jwks, jwks_uri=jwks_uri, algorithms=list(algorithms) or None,
                              actor=actor(), **fields)
        click.echo(f"trusting {kind.label} {row.issuer} ({done(row)})")

    for option in reversed([
            click.argument("issuer"),
            click.option("--jwks", "--jwks-file", "jwks_file", type=click.Path(exists=True, dir_okay=False),
                         help="A file with its public JWK Set."),
            click.option("--jwks-uri", help="An https URL of its JWK Set (fetched safely, cached)."),
            click.option("--alg", "algorithms", multiple=True,
                         help="An accepted algorithm (repeatable); default: "
                              + (", ".join(kind.default_algorithms) or "from the keys, required with --jwks-uri")
                              + "."),
            *options]):
        add = option(add)
    group.command("add", help=f"Trust ISSUER as a {kind.label}.")(add)

    @group.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @with_appcontext
    def list_(as_json):
        items = [{"issuer": row.issuer, "jwks_uri": row.jwks_uri,
                  "inline_keys": len((row.jwks or {}).get("keys", [])), "algorithms": row.algorithms,
                  **{field: getattr(row, field) for field in shown}, "created_at": row.created_at.isoformat()}
                 for row in issuers.listed(kind)]
        emit(items, as_json, lambda item: "  ".join([
            item["issuer"], f"keys={item['jwks_uri'] or str(item['inline_keys']) + ' inline'}",
            f"algs={','.join(item['algorithms'])}", *(f"{field}={item[field]}" for field in shown)]))

    @group.command("remove")
    @click.argument("issuer")
    @with_appcontext
    def remove(issuer):
        with failing_on(issuers.TrustError):
            issuers.remove(kind, issuer, actor=actor())
        click.echo(f"no longer trusting {kind.label} {issuer}")

    return group


publisher_group = issuer_group(
    issuers.PUBLISHERS, "publisher", "Trusted software publishers, whose software statements are believed.",
    [click.option("--assurance", "assurance_level", type=int, default=1, show_default=True,
                  help="The assurance level its statements carry (config/scopes.toml)."),
     click.option("--require-jti", is_flag=True,
                  help="Accept each of its statements once: they must carry a jti; a second use is refused.")],
    shown=("assurance_level", "require_jti"),
    done=lambda row: f"assurance {row.assurance_level}, algorithms {', '.join(row.algorithms)}"
                     f"{', each statement once' if row.require_jti else ''}")

workload_issuer_group = issuer_group(
    issuers.WORKLOAD_ISSUERS, "workload-issuer",
    "Workload-identity issuers (SPIFFE JWT-SVID, Kubernetes, CI OIDC) whose JWTs are accepted as "
    "token-exchange subject tokens and as jwt-bearer grants.",
    [click.option("--audience", required=True,
                  help="The aud its subject tokens must carry for this server (a jwt-bearer grant's "
                       "aud is always this server's issuer)."),
     click.option("--subject-pattern", help="Only subjects matching this pattern (* ? wildcards).")],
    shown=("audience", "subject_pattern"),
    done=lambda row: f"audience {row.audience}, algorithms {', '.join(row.algorithms)}")
