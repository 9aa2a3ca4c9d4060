"""Keys, headers and endpoints checked when the config is loaded (issue 20, items 3 and 5).

A key or header with a newline or control character is a ConfigError naming the variable or
field, never an HTTP error with the key inside. Plain HTTP is judged on the host as the
resolver reads it: legacy IPv4 forms and IPv6-mapped addresses are addresses, and names must
resolve only to loopback / RFC 1918 / ULA. Name resolution is injected: no DNS in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from core.errors import ConfigError
from schemas.hosts import check_base_url, host_ip, is_exempt_ip
from workers.providers import has_credentials, target_for
from workers.providers.config import load_config

KEY = "sk-test-Z1x2C3v4B5n6M7"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "llm_config.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def no_dns(host: str) -> Sequence[str]:
    raise AssertionError(f"unexpected resolution of {host!r}")


# ---- hosts as the resolver reads them --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://134744072/v1", "8.8.8.8"),  # one decimal number
        ("http://0x08080808/v1", "8.8.8.8"),  # one hex number
        ("http://010.010.010.010/", "8.8.8.8"),  # octal parts
        ("http://8.8/", "8.0.0.8"),  # short form
        ("http://[::ffff:8.8.8.8]/", "8.8.8.8"),  # IPv6-mapped
        ("http://0/", "0.0.0.0"),
        ("http://169.254.169.254/", "169.254.169.254"),  # link-local metadata: not exempt
        ("http://100.64.0.1/", "100.64.0.1"),  # carrier-grade NAT: not RFC 1918
        ("http://[2001:4860:4860::8888]/", "2001:4860:4860::8888"),
        ("http://[fe80::1]/", "fe80::1"),
    ],
)
def test_public_addresses_in_any_form_need_https(url: str, public: str) -> None:
    with pytest.raises(ValueError, match="plain HTTP") as caught:
        check_base_url(url, allow_insecure_http=False, resolve=no_dns)
    assert public in str(caught.value)
    assert check_base_url(url, allow_insecure_http=True) == url.rstrip("/")
    assert check_base_url(url.replace("http://", "https://", 1), False, no_dns)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "http://2130706433/",  # 127.0.0.1 as one number
        "http://0x7f.1/",  # 127.0.0.1, short hex form
        "http://10.0.0.5/v1",
        "http://012.0.0.5/",  # octal 10.0.0.5
        "http://172.16.3.4/",
        "http://192.168.1.20:11434",
        "http://[::1]:9000/",
        "http://[fd00::12]/",
        "http://[::ffff:10.1.2.3]/",
        "http://localhost:8000",
        "http://api.localhost/",
    ],
)
def test_loopback_and_private_addresses_may_use_plain_http(url: str) -> None:
    assert check_base_url(url, allow_insecure_http=False, resolve=no_dns) == url.rstrip("/")


@pytest.mark.parametrize(
    ("addresses", "ok"),
    [
        (["10.0.0.7"], True),
        (["127.0.0.1", "::1"], True),
        (["fd12:3456::1"], True),
        (["10.0.0.7", "8.8.8.8"], False),  # one public answer is enough to refuse
        (["::ffff:8.8.4.4"], False),
        ([], False),
    ],
)
def test_names_must_resolve_only_to_exempt_addresses(
    tmp_path: Path, addresses: list[str], ok: bool
) -> None:
    path = write(tmp_path, "providers:\n  local: {api_base: 'http://vllm.corp:8000/v1'}\n")
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return addresses

    if ok:
        config = load_config(path, env={}, resolve=resolve)
        assert config.providers["local"].api_base == "http://vllm.corp:8000/v1"
    else:
        with pytest.raises(ConfigError, match=r"providers\.local.*plain HTTP.*vllm\.corp"):
            load_config(path, env={}, resolve=resolve)
    assert asked == ["vllm.corp"]


def test_unresolvable_names_and_model_urls_are_refused(tmp_path: Path) -> None:
    def fails(host: str) -> list[str]:
        raise OSError("Name or service not known")

    path = write(tmp_path, "providers:\n  local: {api_base: 'http://vllm:8000/v1'}\n")
    with pytest.raises(ConfigError, match="cannot be resolved.*Name or service not known"):
        load_config(path, env={}, resolve=fails)
    path = write(
        tmp_path,
        "models:\n  - {name: m, provider: local, api_url: 'http://gpu-box:8000/v1'}\n",
    )
    with pytest.raises(ConfigError, match=r"models\[0\].*public address \(8\.8\.8\.8\)"):
        load_config(path, env={}, resolve=lambda host: ["8.8.8.8"])
    allowed = "providers:\n  local: {api_base: 'http://vllm:8000', allow_insecure_http: true}\n"
    assert load_config(write(tmp_path, allowed), env={}, resolve=no_dns)


@pytest.mark.parametrize("ip", ["134744072", "0x08080808", "8.8", "::ffff:8.8.8.8"])
def test_host_ip_reads_legacy_forms(ip: str) -> None:
    found = host_ip(ip)
    assert found is not None and not is_exempt_ip(found)
    assert host_ip("vllm") is None and host_ip("gpu-box.internal") is None


# ---- keys and headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (KEY + "\n", "contains a newline"),
        (KEY + "\r", "contains a newline"),
        ("sk-a\tb-c1234567", "contains a control character (U+0009)"),
        (KEY + "\x00", "contains a control character (U+0000)"),
        (KEY + "\x7f", "contains a control character (U+007F)"),
    ],
)
def test_a_malformed_env_key_names_the_variable(tmp_path: Path, value: str, problem: str) -> None:
    path = write(tmp_path, "models:\n  - {name: m, provider: openai}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"OPENAI_API_KEY": value})
    assert str(caught.value) == f"OPENAI_API_KEY: {problem}"
    assert KEY[:8] not in repr(caught.value) and KEY[-8:] not in str(caught.value)


def test_malformed_keys_and_headers_in_the_file_name_the_field(tmp_path: Path) -> None:
    cases = {
        'providers:\n  openai: {api_key: "sk-abc\\ndef-123456"}\n': (
            "providers.openai.api_key: contains a newline"
        ),
        'providers:\n  openai: {api_keys: ["sk-ok-12345678", "sk-b\\u0007ad-1234"]}\n': (
            "providers.openai.api_keys[1]: contains a control character (U+0007)"
        ),
        'providers:\n  openai: {headers: {x-gateway-token: "gw-1234567\\n"}}\n': (
            "providers.openai.headers: header 'x-gateway-token': contains a newline"
        ),
        'models:\n  - {name: m, provider: openai, api_key: "sk-m\\r\\n-12345678"}\n': (
            "models[0].api_key: contains a newline"
        ),
    }
    for text, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, text), env={})
        assert expected in str(caught.value)
        assert "12345678" not in str(caught.value) and "1234567" not in str(caught.value)


def test_key_file_and_key_list_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - {name: m, provider: openai}\n")
    key_file = tmp_path / "openai_key"
    key_file.write_text(KEY + "\n", encoding="utf-8")  # one trailing newline is stripped
    config = load_config(path, env={"OPENAI_API_KEY_FILE": str(key_file)})
    settings = config.providers["openai"]
    assert settings.api_key_file == str(key_file) and settings.api_key is None
    assert has_credentials(config.models[0], config)
    pool = target_for(config.models[0], config).keys
    assert pool is not None and [k.value for k in pool.keys()] == [KEY]

    key_file.write_text(KEY + "\n\n", encoding="utf-8")  # a second newline is part of it
    with pytest.raises(ConfigError, match=r"^OPENAI_API_KEY_FILE: key file .* newline"):
        load_config(path, env={"OPENAI_API_KEY_FILE": str(key_file)})
    with pytest.raises(ConfigError, match=r"^OPENAI_API_KEY_FILE: cannot read key file"):
        load_config(path, env={"OPENAI_API_KEY_FILE": str(tmp_path / "missing")})

    config = load_config(path, env={"OPENAI_API_KEYS": "sk-one-11111111, sk-two-22222222,"})
    assert [k.get_secret_value() for k in config.providers["openai"].api_keys] == [
        "sk-one-11111111",
        "sk-two-22222222",
    ]
    with pytest.raises(ConfigError, match=r"^OPENAI_API_KEYS \(key 2\): contains a control"):
        load_config(path, env={"OPENAI_API_KEYS": "sk-one-11111111,sk-t\x01wo"})
