"""The bounded parser (app.support.untrusted_json): depth and size are measured without recursion, so
nothing untrusted can make a parser raise RecursionError; what it refuses, it refuses with an
UntrustedJSONError whose message may go into an error_description."""
import base64
import json

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey

from app.support.untrusted_json import (
    MAX_DEPTH,
    UntrustedJSONError,
    check_jwt,
    depth,
    loads,
)

DEEP = 10_000  # well past the interpreter's recursion limit, within the default size limit


def nested(levels: int, open_="[", close="]") -> str:
    return open_ * levels + close * levels


def objects(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def refused(text, **limits) -> str:
    with pytest.raises(UntrustedJSONError) as caught:
        loads(text, **limits)
    message = str(caught.value)
    assert '"' not in message and "\\" not in message, message
    return message


def test_the_recursive_parser_it_guards_raises_recursion_error():
    with pytest.raises(RecursionError):
        json.loads(nested(DEEP))


@pytest.mark.parametrize("make", [nested, objects])
def test_depth_at_the_limit_is_accepted_and_one_more_refused(make):
    assert depth(make(MAX_DEPTH)) == MAX_DEPTH
    assert loads(make(MAX_DEPTH)) is not None
    assert "nested deeper than 32 levels" in refused(make(MAX_DEPTH + 1))
    assert loads(make(3), max_depth=3) is not None
    assert "nested deeper than 2 levels" in refused(make(3), max_depth=2)


@pytest.mark.parametrize("text", [nested(DEEP), objects(DEEP), "[" * DEEP, '{"a":[' * DEEP])
def test_deep_nesting_is_refused_without_recursion(text):
    assert "nested deeper" in refused(text)
    assert "nested deeper" in refused(text.encode())


def test_past_the_first_error_nesting_does_not_matter():
    """The parser stops at the first error, here the first character, long before any nesting."""
    assert "not valid JSON (at character 0)" in refused("]" * DEEP + nested(DEEP))


def test_size_limit_in_utf8_bytes():
    text = json.dumps("x" * 98)
    assert len(text) == 100 and loads(text, max_bytes=100) == "x" * 98
    assert "larger than 99 bytes" in refused(text, max_bytes=99)
    assert "larger than 99 bytes" in refused(text.encode(), max_bytes=99)
    wide = json.dumps("\u00e9" * 40, ensure_ascii=False)  # 42 characters, 82 bytes
    assert loads(wide, max_bytes=82) == "\u00e9" * 40
    assert "larger than 81 bytes" in refused(wide, max_bytes=81)


@pytest.mark.parametrize("text, levels", [
    ('["[[[[", "{{{{"]', 1),
    ('["\\"[[[["]', 1),                  # an escaped quote does not end the string
    ('["\\\\", [[]]]', 3),               # an escaped backslash does: the brackets after it count
    ('{"[[": {"]]": "}}}}"}}', 2),
    ('"\\u005b\\u005b"', 0),
    ('["' + "[" * DEEP + '"]', 1),
])
def test_brackets_inside_strings_do_not_count(text, levels):
    assert depth(text) == levels
    assert loads(text) == json.loads(text)


def test_an_unterminated_string_runs_to_the_end():
    assert depth('["' + "[" * DEEP) == 1
    assert "not valid JSON" in refused('["' + "[" * DEEP)


@pytest.mark.parametrize("text, words", [
    ("NaN", "NaN"), ('{"a": Infinity}', "Infinity"), ("[-Infinity]", "-Infinity"),
    ("[1e999]", "too large for a float"), ("-1e400", "too large for a float"),
])
def test_nan_and_infinity_are_not_json(text, words):
    assert words in refused(text) and "RFC 8259" in refused(text)


@pytest.mark.parametrize("text, words", [
    ("{", "not valid JSON (at character 1)"), ('{"a": "\\x"}', "not valid JSON"), ("", "not valid JSON"),
    ("[1] x", "not valid JSON"), ("1" * 5000, "not valid JSON"), ("\ufeff{}", "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"), (b'"\xc3"', "not UTF-8"),
])
def test_malformed_text(text, words):
    assert words in refused(text)


def test_what_names_the_text():
    assert refused("{", what="the body").startswith("the body is not valid JSON")
    assert refused("[NaN]", what="authorization_details").startswith("authorization_details holds NaN")


TRICKY = st.text(st.sampled_from('[]{}"\\ab,:\u00e9'))  # strings full of what a scanner could miscount
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=40)


def true_depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(true_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(true_depth, value.values()), default=0)
    return 0


@hsettings(max_examples=300, deadline=None)
@given(value=JSON)
def test_depth_is_the_nesting_depth_of_any_json(value):
    text = json.dumps(value)
    assert depth(text) == true_depth(value)
    if true_depth(value) <= MAX_DEPTH:
        assert loads(text) == value


@hsettings(max_examples=500, deadline=None)
@given(text=st.text(st.sampled_from('[]{}"\\ ,:a1'), max_size=80))
def test_any_text_is_parsed_as_json_does_or_refused(text):
    """Only UntrustedJSONError ever escapes; valid JSON within the limits parses as json does."""
    try:
        expected = json.loads(text)
    except ValueError:
        expected = refused
    try:
        got = loads(text, max_depth=4)
    except UntrustedJSONError:
        assert expected is refused or true_depth(expected) > 4
    else:
        assert got == expected


# ---- check_jwt: a JWT's header and payload, before joserfc parses them ----------------------------

def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


HEADER = b64('{"alg":"ES256"}')


def test_a_signed_jwt_passes():
    key = ECKey.generate_key("P-256")
    check_jwt(jwt.encode({"alg": "ES256", "kid": "k"}, {"iss": "x", "aud": ["a", "b"], "n": {"m": [1]}}, key))
    check_jwt(f"{HEADER}.{b64(nested(MAX_DEPTH))}.c2ln")


@pytest.mark.parametrize("token, words", [
    (f"{HEADER}.{b64(nested(DEEP))}.c2ln", "the JWT payload is nested deeper"),
    (f"{b64(nested(DEEP))}.{b64('{}')}.c2ln", "the JWT header is nested deeper"),
    (f"{HEADER}.{b64(objects(MAX_DEPTH + 1))}.", "the JWT payload is nested deeper"),
    (f"{HEADER}.{b64('[NaN]')}.c2ln", "the JWT payload holds NaN"),
    (f"{b64('{}')}.{b64('{')}.c2ln", "the JWT payload is not valid JSON"),
    (f"{HEADER}.{b64(nested(DEEP))}", "not a compact JWS"),
    (f"{HEADER}.{b64(nested(DEEP))}.x.y.z", "not a compact JWS"),
    ("e30.a.c2ln", "the JWT payload is not base64url"),
    ("\u00e9.e30.c2ln", "the JWT header is not base64url"),
    (None, "not a compact JWS"),
])
def test_check_jwt_refusals(token, words):
    with pytest.raises(UntrustedJSONError, match=words):
        check_jwt(token)


def test_an_unencoded_payload_is_checked_as_it_stands():
    """RFC 7797: with b64 false the payload segment is the JSON itself, and joserfc reads it so."""
    header = b64('{"alg":"ES256","b64":false,"crit":["b64"]}')
    with pytest.raises(UntrustedJSONError, match="payload is nested deeper"):
        check_jwt(f"{header}.{nested(DEEP)}.c2ln")
    check_jwt(f"{header}.{nested(MAX_DEPTH)}.c2ln")


def test_what_names_the_jwt():
    with pytest.raises(UntrustedJSONError, match="^the client assertion payload is nested deeper than 32 levels$"):
        check_jwt(f"{HEADER}.{b64(nested(DEEP))}.c2ln", what="the client assertion")
