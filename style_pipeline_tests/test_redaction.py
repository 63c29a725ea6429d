"""``redaction.redact``: credentials out, everything else untouched."""

from __future__ import annotations

import pytest

from style_pipeline.redaction import MASK, has_userinfo, redact

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://bob:hunter2@127.0.0.1:8000/v1 refused", "http://***@127.0.0.1:8000/v1 refused"),
        ("s3://AKIDEXAMPLE:secret@bucket/key", "s3://***@bucket/key"),
        ("invalid api key: Bearer sk-abc.DEF_123", "invalid api key: Bearer ***"),
        ("{'Authorization': 'Bearer abc.def'}", "{'Authorization': '***'}"),
        ("Authorization: Basic dXNlcjpwYXNz\nnext line", "Authorization: ***\nnext line"),
        ("Proxy-Authorization=Digest x=1", "Proxy-Authorization=***"),
        ("GET /v1?api_key=abc123&x=1", "GET /v1?api_key=***&x=1"),
        ('{"error": {"token": "zzz"}}', '{"error": {"token": "***"}}'),
        ("access_token=ya29.a0 done", "access_token=*** done"),
        ("aws_secret_access_key = abc/def+g", "aws_secret_access_key = ***"),
        ("X-Api-Key: 0123456789", "X-Api-Key: ***"),
        ("password: hunter2", "password: ***"),
        ("key sk-proj-0123456789abcdef in use", "key sk-*** in use"),
        ("hf_abcdefghijklmnopqrstu", "hf_***"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_***"),
        ("xoxb-1234567890-abcdef", "xoxb-***"),
        (f"id AKIAIOSFODNN7EXAMPLE secret {AWS_SECRET}.", "id AKIA*** secret ***."),
    ],
)
def test_credentials_are_masked(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "HTTP 500: upstream busy, retry later",
        "max_tokens: 60, max_new_tokens=40, monkey: 3",
        "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 and sha256 " + "ab" * 32,
        "http://127.0.0.1:8000/v1/chat/completions?x=a@b",
        "a woman on a street at golden hour",
        "Basic auth is not supported",
        "",
    ],
)
def test_plain_text_is_left_alone(text):
    assert redact(text) == text


def test_the_exact_value_of_a_named_variable_is_masked(monkeypatch):
    monkeypatch.setenv("MY_GATEWAY_KEY", "plain-looking-value")
    text = "echo plain-looking-value and plain-looking-value%21 and plain%2Dlooking"
    assert redact(text) == text  # not named: nothing looks like a key
    assert redact(text, ["MY_GATEWAY_KEY"]) == f"echo {MASK} and {MASK}%21 and plain%2Dlooking"
    monkeypatch.setenv("MY_GATEWAY_KEY", "a/b c")
    assert redact("got a%2Fb%20c", ["MY_GATEWAY_KEY"]) == f"got {MASK}"  # URL-encoded too


def test_known_secret_variables_are_masked_without_being_named(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "zz-custom-format-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "short-but-secret")
    assert redact("zz-custom-format-1 / short-but-secret") == f"{MASK} / {MASK}"


@pytest.mark.parametrize("value", ["", "k", "abc"])
def test_too_short_values_are_not_matched_exactly(monkeypatch, value):
    monkeypatch.setenv("TINY_KEY", value)
    assert redact("a key called abc", ["TINY_KEY", None]) == "a key called abc"


def test_non_strings_are_redacted_as_their_text():
    assert redact(ValueError("Bearer abc")) == "Bearer ***"
    assert redact({"Authorization": "Bearer x"}) == "{'Authorization': '***'}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://u:p@h/v1", True),
        ("https://u@h", True),
        ("u:p@h/v1", True),
        ("http://h/v1?x=a@b", False),
        ("http://h/v1#a@b", False),
        ("http://h:8000/v1", False),
    ],
)
def test_has_userinfo(url, expected):
    assert has_userinfo(url) is expected
