"""Request checks: auth, required fields, roles, unknown models, context windows."""

from __future__ import annotations

import httpx
import pytest
from sim_helpers import PROVIDERS, build, error_message, send

AUTH_PROVIDERS = ("openai", "anthropic", "google", "cohere", "huggingface")


@pytest.mark.parametrize("provider", AUTH_PROVIDERS)
def test_missing_key_is_401_in_envelope(client: httpx.Client, provider: str) -> None:
    response = send(client, provider, key=None)
    assert response.status_code == 401
    assert error_message(provider, response.json())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_bad_key_is_401_in_envelope(client: httpx.Client, provider: str) -> None:
    response = send(client, provider, key="bad-key-123")
    assert response.status_code == 401
    assert error_message(provider, response.json())


def test_auth_envelope_details(client: httpx.Client) -> None:
    err = send(client, "openai", key="bad-1").json()["error"]
    assert (err["type"], err["code"], err["param"]) == (
        "invalid_request_error",
        "invalid_api_key",
        None,
    )
    assert send(client, "openai", key=None).json()["error"]["code"] is None
    anth = send(client, "anthropic", key=None).json()
    assert anth["error"]["type"] == "authentication_error"
    google = send(client, "google", key="bad-1").json()["error"]
    assert google["status"] == "UNAUTHENTICATED"
    assert google["details"][0]["reason"] == "API_KEY_INVALID"
    assert send(client, "cohere", key="bad-1").json() == {"message": "invalid api token"}
    hf = send(client, "huggingface", key=None)
    assert hf.json()["error_type"] == "authentication" and hf.headers["X-Error-Message"]


@pytest.mark.parametrize("provider", ("local", "ollama"))
def test_local_servers_need_no_key(client: httpx.Client, provider: str) -> None:
    assert send(client, provider, key=None).status_code == 200


def test_anthropic_requires_version_header(client: httpx.Client) -> None:
    path, _, body = build("anthropic")
    response = client.post(path, json=body, headers={"x-api-key": "k"})
    assert response.status_code == 400
    assert "anthropic-version" in error_message("anthropic", response.json())
    bearer = {"Authorization": "Bearer k", "anthropic-version": "2023-06-01"}
    assert client.post(path, json=body, headers=bearer).status_code == 200


@pytest.mark.parametrize("provider", PROVIDERS)
def test_missing_model_prefix_is_404(client: httpx.Client, provider: str) -> None:
    response = send(client, provider, model="missing-model-1")
    assert response.status_code == 404
    assert "missing-model-1" in error_message(provider, response.json())


def test_404_envelope_details(client: httpx.Client) -> None:
    assert send(client, "openai", model="missing-x").json()["error"]["code"] == "model_not_found"
    anth = send(client, "anthropic", model="missing-x").json()["error"]["type"]
    assert anth == "not_found_error"
    assert send(client, "google", model="missing-x").json()["error"]["status"] == "NOT_FOUND"
    assert send(client, "ollama", model="missing-x").json() == {
        "error": "model 'missing-x' not found"
    }


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tiny_model_context_is_400(client: httpx.Client, provider: str) -> None:
    ok = send(client, provider, model="tiny-1", max_tokens=900)
    assert ok.status_code == 200, ok.text
    response = send(client, provider, model="tiny-1", messages=[("user", "x" * 5000)])
    assert response.status_code == 400
    assert error_message(provider, response.json())
    over = send(client, provider, model="tiny-1", max_tokens=995)  # 8 prompt + 995 > 1000
    assert over.status_code == 400


def test_context_envelope_details(client: httpx.Client) -> None:
    long = [("user", "x" * 5000)]
    err = send(client, "openai", model="tiny", messages=long).json()["error"]
    assert err["code"] == "context_length_exceeded"
    anth = send(client, "anthropic", model="tiny", messages=long).json()["error"]
    assert anth["type"] == "invalid_request_error" and "prompt is too long" in anth["message"]
    google = send(client, "google", model="tiny", messages=long).json()["error"]
    assert google["status"] == "INVALID_ARGUMENT" and google["code"] == 400
    cohere = send(client, "cohere", model="tiny", messages=long).json()["message"]
    assert cohere.startswith("too many tokens: ")


def test_big_model_allows_large_prompt(client: httpx.Client) -> None:
    assert send(client, "openai", messages=[("user", "x" * 100_000)]).status_code == 200


@pytest.mark.parametrize(
    ("provider", "role"),
    [
        ("openai", "robot"),
        ("huggingface", "robot"),
        ("local", "robot"),
        ("cohere", "robot"),
        ("ollama", "robot"),
        ("anthropic", "system"),
        ("anthropic", "robot"),
        ("google", "system"),
    ],
)
def test_invalid_role_is_400(client: httpx.Client, provider: str, role: str) -> None:
    response = send(client, provider, messages=[(role, "hi")])
    assert response.status_code == 400
    assert error_message(provider, response.json())


def test_google_assistant_role_is_400(client: httpx.Client) -> None:
    path, headers, _ = build("google")
    body = {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 400
    assert "valid role" in error_message("google", response.json())


def test_anthropic_roles_alternate_starting_with_user(client: httpx.Client) -> None:
    starts_wrong = send(client, "anthropic", messages=[("assistant", "hi"), ("user", "yo")])
    assert starts_wrong.status_code == 400
    repeated = send(client, "anthropic", messages=[("user", "a"), ("user", "b")])
    assert repeated.status_code == 400
    good = send(client, "anthropic", messages=[("user", "a"), ("assistant", "b"), ("user", "c")])
    assert good.status_code == 200


@pytest.mark.parametrize(
    ("provider", "drop"),
    [
        ("openai", "model"),
        ("openai", "messages"),
        ("anthropic", "model"),
        ("anthropic", "max_tokens"),
        ("anthropic", "messages"),
        ("google", "contents"),
        ("cohere", "model"),
        ("cohere", "messages"),
        ("huggingface", "messages"),
        ("local", "model"),
        ("ollama", "model"),
        ("ollama", "messages"),
    ],
)
def test_required_fields(client: httpx.Client, provider: str, drop: str) -> None:
    path, headers, body = build(provider)
    del body[drop]
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 400
    message = error_message(provider, response.json())
    assert drop in message or provider == "cohere"


def test_cohere_invalid_request_prefix(client: httpx.Client) -> None:
    path, headers, body = build("cohere")
    del body["model"]
    assert (
        client.post(path, json=body, headers=headers)
        .json()["message"]
        .startswith("invalid request: ")
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unparseable_json_is_400(client: httpx.Client, provider: str) -> None:
    path, headers, _ = build(provider)
    headers["content-type"] = "application/json"
    response = client.post(path, content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert error_message(provider, response.json())


def test_bad_max_tokens_is_400(client: httpx.Client) -> None:
    path, headers, body = build("openai")
    body["max_tokens"] = 0
    assert client.post(path, json=body, headers=headers).status_code == 400
    body["max_tokens"] = "ten"
    assert client.post(path, json=body, headers=headers).status_code == 400


def test_google_empty_parts_is_400(client: httpx.Client) -> None:
    path, headers, _ = build("google")
    body = {"contents": [{"role": "user", "parts": []}]}
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_streaming_is_refused_clearly_where_not_implemented(client: httpx.Client) -> None:
    path, headers, body = build("openai")
    body["stream"] = True
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 400
    assert "stream" in response.json()["error"]["message"]


def test_errors_are_logged_with_kind(sim: object, client: httpx.Client) -> None:
    send(client, "openai", key=None)
    send(client, "openai", model="missing-q")
    send(client, "openai", model="tiny", messages=[("user", "x" * 9000)])
    log = client.get("/_sim/log", params={"provider": "openai"}).json()["entries"]
    assert [(e["status"], e["kind"]) for e in log] == [
        (401, "auth_missing"),
        (404, "not_found"),
        (400, "context"),
    ]
    stats = client.get("/_sim/stats").json()
    assert stats["total_served"] == 0
    assert stats["providers"]["openai"]["by_status"] == {"401": 1, "404": 1, "400": 1}
