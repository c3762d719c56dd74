"""Regenerate migrations/versions/0001_initial.py from the models.

Only while nothing has shipped: once a release is out, add a new revision with
`ostiary db migrate` semantics instead of rewriting the first one.
Run: .venv/bin/python tools/regenerate_initial_migration.py
"""
import tempfile
from pathlib import Path

from flask_migrate import migrate

from app import create_app

VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"
SEED = '''
    # The audit chain's head row: every append locks it (app/audit/trail.py).
    op.bulk_insert(sa.table("audit_head", sa.column("id", sa.Integer), sa.column("seq", sa.Integer),
                            sa.column("hash", sa.String)), [{"id": 1, "seq": 0, "hash": "0" * 64}])
'''

for old in VERSIONS.glob("0001_*.py"):
    old.unlink()
app = create_app({"INSTANCE_PATH": tempfile.mkdtemp(), "SECRET_KEY": "x" * 40,
                  "KEY_ENCRYPTION_KEY": "y" * 40}, check=False)
with app.app_context():
    migrate(directory=str(VERSIONS.parent), message="initial", rev_id="0001")
path = next(VERSIONS.glob("0001_*.py"))
text = path.read_text()
marker = "    # ### end Alembic commands ###\n"
text = text.replace(marker, marker + SEED, 1)
# The migration must not import the app: UTCDateTime is a plain DateTime in the database.
text = text.replace("app.models.types.UTCDateTime()", "sa.DateTime()")
path.write_text(text)
print(f"wrote {path}")
