"""The one secret scrubber (core/secrets_scrub.py): whole secrets and any 8-character fragment
of one, in every text we raise, store or print; exceptions carry no secret in str/repr/pickle.
"""

from __future__ import annotations

import pickle

import pytest

from core.errors import AuthFailed, LLMProviderError, ProviderUnavailable
from core.secrets_scrub import REDACTED, Scrubber, header_secrets, register_secrets
from workers.observability.redaction import RedactionFilter

KEY = "sk-live-Q7wE9rT2yU4iO6pA8sD0fG"
GATEWAY = "gw-TOKEN-9f8e7d6c5b4a3210"


def windows(secret: str, n: int = 8) -> list[str]:
    return [secret[i : i + n] for i in range(len(secret) - n + 1)]


def assert_no_fragment(text: str, *secrets: str) -> None:
    for secret in secrets:
        for w in windows(secret):
            assert w not in text, (w, text)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"Incorrect API key provided: {KEY}", "Incorrect API key provided: "),
        (f"key {KEY[:-4]} is invalid", "key "),  # minus its last characters
        (f"req_{KEY[3:19]}_x", "req_"),  # a substring inside a request id
        (f"code={KEY[:-1]}", "code="),
        (f"{KEY[-8:]} at the end", " at the end"),  # exactly 8 characters
        (f'{{"error": "bad gateway token {GATEWAY}"}}', "bad gateway token "),
        (f"two: {KEY} and {GATEWAY[2:]}", "two: "),
        (repr(f"Bearer {KEY}\n".encode()), "b'Bearer "),  # httpx's Illegal header value
    ],
)
def test_whole_and_partial_secrets_are_replaced(text: str, kept: str) -> None:
    scrubber = Scrubber([KEY, GATEWAY])
    out = scrubber.scrub(text)
    assert_no_fragment(out, KEY, GATEWAY)
    assert REDACTED in out and kept in out


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nothing secret here at all, just a long ordinary log line with prompt_tokens=12",
        KEY[:7],  # shorter than a fragment: not a secret by itself
        f"{KEY[:7]} {KEY[7:14]}",  # two short pieces with a gap are not one run
    ],
)
def test_text_without_a_fragment_is_unchanged(text: str) -> None:
    assert Scrubber([KEY, GATEWAY]).scrub(text) == text


def test_adjacent_fragments_become_one_marker_and_short_secrets_only_match_whole() -> None:
    scrubber = Scrubber([KEY, "abcdef"])  # 6 characters: replaced whole, never by fragment
    assert scrubber.scrub(f"<{KEY}{KEY[:10]}>") == f"<{REDACTED}>"  # touching runs merge
    assert scrubber.scrub("x abcdef y abcde") == f"x {REDACTED} y abcde"
    assert Scrubber(["short"]).scrub("short") == "short"  # under the minimum: ignored


def test_header_secrets_skip_only_known_public_headers() -> None:
    headers = {"x-gateway-token": GATEWAY, "X-Title": "my app", "HTTP-Referer": "https://a.b"}
    assert header_secrets(headers) == [GATEWAY]


def test_provider_errors_are_scrubbed_in_str_repr_pickle_and_fields() -> None:
    register_secrets([KEY, GATEWAY])
    exc = AuthFailed(
        f"openai HTTP 401: Incorrect API key provided: {KEY[:-3]}",
        provider="openai",
        status=401,
        request_id=f"req-{KEY}",
        code=GATEWAY[1:],
    )
    back = pickle.loads(pickle.dumps(exc))
    for e in (exc, back):
        texts = [str(e), repr(e), e.message, str(e.request_id), str(e.code), repr(e.fields)]
        assert_no_fragment(" ".join(texts), KEY, GATEWAY)
        assert e.status == 401 and isinstance(e, AuthFailed)
    assert_no_fragment(repr(pickle.dumps(exc)), KEY, GATEWAY)
    transport = ProviderUnavailable(
        f"openai: LocalProtocolError: Illegal header value {f'Bearer {KEY}{chr(10)}'.encode()!r}"
    )
    assert isinstance(transport, LLMProviderError)
    assert_no_fragment(str(transport) + repr(transport), KEY)


def test_log_filter_redacts_fragments_too() -> None:
    flt = RedactionFilter([GATEWAY])
    assert_no_fragment(flt.scrub(f"echoed {GATEWAY[:-2]} back"), GATEWAY)


def test_snapshot_and_restore_forget_later_secrets() -> None:
    scrubber = Scrubber()
    held = scrubber.snapshot()
    scrubber.add([KEY])
    assert scrubber.scrub(KEY) == REDACTED
    scrubber.restore(held)
    assert scrubber.scrub(KEY) == KEY and not scrubber


def test_tool_call_arguments_are_scrubbed_and_stay_json() -> None:
    import json

    from core.secrets_scrub import register_secrets
    from schemas.request import ToolCall
    from workers.providers.base import _scrubbed_call

    key = "sk-toolcall-SECRET-5f3a9c1e77"
    register_secrets([key])
    call = ToolCall(id="call_1", name="lookup", arguments=json.dumps({"q": f"echo {key[:-3]}"}))
    clean = _scrubbed_call(call)
    assert key[:12] not in clean.arguments and "SECRET-5f3a" not in clean.arguments
    assert json.loads(clean.arguments)["q"].startswith("echo ")
    untouched = ToolCall(id="c2", name="lookup", arguments='{"q": "fine"}')
    assert _scrubbed_call(untouched) is untouched
