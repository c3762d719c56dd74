import jwt as pyjwt
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select

from app.extensions import db
from app.models import SigningKey
from app.signing import rotate
from app.signing.crypto import WrongKeyEncryptionKey, decrypt, derive
from app.support import clock

from .factories import events

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def keys_by_state():
    rows = db.session.execute(select(SigningKey)).scalars().all()
    return {state: [k.kid for k in rows if k.state == state] for state in
            ("next", "active", "retiring", "retired")}


def test_init_makes_one_active_and_one_next_key(app):
    states = keys_by_state()
    assert len(states["active"]) == 1 and len(states["next"]) == 1


def test_kid_is_rfc7638_thumbprint_and_private_key_is_encrypted(app):
    row = db.session.execute(select(SigningKey).where(SigningKey.state == "active")).scalar_one()
    assert ECKey.import_key(row.public_jwk).thumbprint() == row.kid
    assert b"PRIVATE KEY" not in row.private_encrypted
    pem = decrypt(app.extensions["ostiary.aead"], row.private_encrypted, row.kid)
    assert ECKey.import_key(pem).thumbprint() == row.kid
    with pytest.raises(WrongKeyEncryptionKey):
        decrypt(derive("another key-encryption key of enough length"), row.private_encrypted, row.kid)


def test_jwks_publishes_public_parts_of_next_active_retiring(app, client):
    rotate("ES256", app.extensions["ostiary.aead"], "test", 300)
    response = client.get("/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["Cache-Control"]
    published = response.get_json()["keys"]
    states = keys_by_state()
    assert {k["kid"] for k in published} == set(states["next"] + states["active"] + states["retiring"])
    for key in published:
        assert not PRIVATE_MEMBERS & key.keys()
        assert key["use"] == "sig" and key["alg"] == "ES256"


def test_rotation_moves_each_key_one_step_and_is_audited(app):
    before = keys_by_state()
    change = rotate("ES256", app.extensions["ostiary.aead"], "admin:alice", 300)
    after = keys_by_state()
    assert after["active"] == before["next"] == [change["active"]]
    assert after["retiring"] == before["active"]
    assert after["next"] == [change["next"]]
    [event] = events("key.rotated")
    assert event.actor == "admin:alice" and event.data["active"] == change["active"]


def test_retiring_key_stays_published_until_its_tokens_expired(app):
    aead = app.extensions["ostiary.aead"]
    first_active = keys_by_state()["active"][0]
    rotate("ES256", aead, "test", 300)
    rotate("ES256", aead, "test", 300)  # too soon: tokens signed by first_active may be alive
    assert first_active in keys_by_state()["retiring"]
    clock.advance(301)
    rotate("ES256", aead, "test", 300)
    assert first_active in keys_by_state()["retired"]


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_token_from_active_key_verifies_with_pyjwt(app, client, alg):
    app.config["SIGNING_ALG"] = alg
    rotate(alg, app.extensions["ostiary.aead"], "test", 300)  # next (ES256) becomes active
    rotate(alg, app.extensions["ostiary.aead"], "test", 300)  # the first key of `alg` is active
    store = app.extensions["ostiary.keys"]
    store.refresh(force=True)
    kid, signer_alg, key = store.signer()
    assert signer_alg == alg
    token = jwt.encode({"alg": alg, "kid": kid, "typ": "at+jwt"}, {"sub": "x"}, key, algorithms=[alg])
    jwks = pyjwt.PyJWKSet.from_dict(client.get("/jwks.json").get_json())
    public = next(k for k in jwks.keys if k.key_id == kid)
    assert pyjwt.decode(token, public.key, algorithms=[alg])["sub"] == "x"
