"""The cache key and the cacheability rule (core/cache_key.py): pure, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from core.cache_key import cache_key, effective_max_tokens, is_cacheable, key_for, keys_for
from schemas.config import LLMConfig
from schemas.job import ChatMessage, JobSpec


def msgs(*pairs: tuple[str, str]) -> list[ChatMessage]:
    return [ChatMessage(role=r, content=c) for r, c in pairs]  # type: ignore[arg-type]


def spec(prompt: str = "hello", **fields: Any) -> JobSpec:
    fields.setdefault("model", "m")
    return JobSpec(custom_id="c", messages=msgs(("user", prompt)), **fields)


def config(*models: dict[str, Any], **extra: Any) -> LLMConfig:
    return LLMConfig.model_validate({"models": list(models), **extra})


def dep(name: str = "m", provider: str = "openai", **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider": provider, "temperature": 0, **fields}


BASE = {"model": "m", "system": "be brief", "temperature": 0.0, "max_tokens": 100}
CONVERSATION = msgs(("user", "a"), ("assistant", "b"), ("user", "c"))


def base_key(**change: Any) -> str:
    args = {**BASE, "messages": CONVERSATION, **change}
    return cache_key(
        args["model"], args["messages"], args["system"], args["temperature"], args["max_tokens"]
    )


# ---- the key ------------------------------------------------------------------------------


def test_key_is_a_stable_64_hex_digest() -> None:
    assert base_key() == base_key()
    assert len(base_key()) == 64 and int(base_key(), 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"model": "m2"},
        {"system": "be verbose"},
        {"system": None},
        {"temperature": 0.5},
        {"max_tokens": 101},
        {"max_tokens": None},
        {"messages": msgs(("user", "a"), ("assistant", "b"), ("user", "c "))},
        {"messages": msgs(("user", "a"), ("user", "b"), ("user", "c"))},  # a role changed
        {"messages": CONVERSATION[:2]},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_output_deciding_part_changes_the_key(change: dict[str, Any]) -> None:
    assert base_key(**change) != base_key()


def test_message_order_changes_the_key() -> None:
    assert base_key(messages=list(reversed(CONVERSATION))) != base_key()


def test_message_boundaries_change_the_key() -> None:
    # "ab" + "c" must not collide with "a" + "bc": messages are kept apart, not concatenated
    one = base_key(messages=msgs(("user", "ab"), ("user", "c")))
    assert one != base_key(messages=msgs(("user", "a"), ("user", "bc")))


def test_equivalent_spellings_give_one_key() -> None:
    assert base_key(temperature=0) == base_key(temperature=0.0)
    assert base_key(system="") == base_key(system=None)


def test_key_does_not_depend_on_the_provider_or_deployment() -> None:
    s = spec(max_tokens=50)
    keys = {
        key_for(s, config(dep(provider="openai"))),
        key_for(s, config(dep(provider="anthropic", model_id="claude-x"))),
        key_for(s, config(dep(provider="google"), dep(provider="cohere", id="second"))),
    }
    assert len(keys) == 1 and None not in keys


def test_metadata_and_custom_id_do_not_change_the_key() -> None:
    cfg = config(dep())
    one = key_for(spec(), cfg)
    other = JobSpec(
        custom_id="other", model="m", messages=msgs(("user", "hello")), metadata={"k": 1}
    )
    assert one == key_for(other, cfg)


def test_max_tokens_resolves_to_the_shared_deployment_default() -> None:
    cfg = config(dep(max_tokens=300), dep(provider="anthropic", max_tokens=300))
    assert effective_max_tokens(spec(), cfg) == 300
    assert key_for(spec(), cfg) == key_for(spec(max_tokens=300), cfg)
    changed = config(dep(max_tokens=400), dep(provider="anthropic", max_tokens=400))
    assert key_for(spec(), changed) != key_for(spec(), cfg)


def test_differing_deployment_defaults_leave_max_tokens_unresolved() -> None:
    cfg = config(dep(max_tokens=300), dep(provider="anthropic", max_tokens=400))
    assert effective_max_tokens(spec(), cfg) is None
    assert effective_max_tokens(spec(max_tokens=7), cfg) == 7


# ---- what may be cached -------------------------------------------------------------------

WARM = {"temperature": 0.7}


@pytest.mark.parametrize(
    ("models", "job", "extra", "expected"),
    [
        ([dep()], {}, {}, True),  # deployment at 0, job sets nothing
        ([dep(**WARM)], {"temperature": 0}, {}, True),  # the job's own 0 wins
        ([dep()], {"temperature": 0.7}, {}, False),  # the job's own 0.7 wins
        ([dep(**WARM)], {}, {}, False),  # default deployment temperature is 0.7
        ([dep(), dep(provider="anthropic", **WARM)], {}, {}, False),  # every deployment
        ([dep(), dep("fb", **WARM)], {}, {"fallbacks": {"m": ["fb"]}}, False),  # fallbacks too
        ([dep(), dep("fb")], {}, {"fallbacks": {"m": ["fb"]}}, True),
        ([dep()], {"cache": False}, {}, False),  # per job
        ([dep()], {}, {"cache": {"enabled": False}}, False),  # globally
        ([dep()], {"temperature": 0}, {"cache": {"enabled": False}}, False),
    ],
)
def test_is_cacheable(
    models: list[dict[str, Any]], job: dict[str, Any], extra: dict[str, Any], expected: bool
) -> None:
    cfg = config(*models, **extra)
    s = spec(**job)
    assert is_cacheable(s, cfg) is expected
    assert (key_for(s, cfg) is not None) is expected


def test_a_spec_without_a_resolved_model_is_not_cacheable() -> None:
    assert is_cacheable(spec(model=None), config(dep())) is False


def test_keys_for_keeps_order_and_honours_the_batch_switch() -> None:
    cfg = config(dep())
    specs = [spec("one"), spec("two", temperature=0.9), spec("one"), spec("three", cache=False)]
    keys = keys_for(specs, cfg)
    assert keys[0] is not None and keys[0] == keys[2] and keys[0] != key_for(spec("two"), cfg)
    assert keys[1] is None and keys[3] is None
    assert keys_for(specs, cfg, use_cache=False) == [None] * 4
    assert keys_for(specs, config(dep(), cache={"enabled": False})) == [None] * 4


def test_the_producer_can_import_the_key_without_worker_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys, core.cache_key\n"
        "heavy = ('workers.providers', 'workers.routing', 'workers.pipeline', 'workers.runtime',"
        " 'core.ledger', 'celery', 'sqlalchemy', 'httpx')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_tenant_scope_separates_keys_and_global_scope_shares_them() -> None:
    cfg = config(dep())
    a, b = key_for(spec(), cfg, tenant="a"), key_for(spec(), cfg, tenant="b")
    assert a is not None and b is not None and a != b
    assert keys_for([spec()], cfg, tenant="a") == [a]
    shared = config(dep(), cache={"scope": "global"})
    assert key_for(spec(), shared, tenant="a") == key_for(spec(), shared, tenant="b")
    assert key_for(spec(), shared, tenant="a") == key_for(spec(), cfg)  # global = no tenant part
