"""Why a direct call gave up, as one exception of the documented tree.

Owns: `gave_up`, the error `LLMProviderManager.call_model` raises when `call_direct` returns
`GaveUp`: the last failure's class and fields with every attempt in the message, a wait over
the bounds, missing credentials, or no context window that fits. Must not: decide anything;
it only describes what the policy already decided.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.errors import AuthFailed, ContextTooLong, LLMProviderError
from schemas.config import LLMModelConfig
from workers.direct_call import GaveUp
from workers.providers import env_names


def no_key(deployment: LLMModelConfig) -> AuthFailed:
    names = " or ".join(env_names(deployment.provider)) or "an api_key"
    return AuthFailed(
        f"{deployment.deployment_id}: no API key (set {names}, or api_key in llm_config.yaml)",
        provider=deployment.provider.value,
        model=deployment.model_id,
        deployment=deployment.deployment_id,
    )


def gave_up(
    name: str, route: list[LLMModelConfig], has_key: Mapping[str, bool], result: GaveUp
) -> LLMProviderError:
    """The error `call_model` raises when the policy gave up (see `combined`). Deployments
    skipped for lacking a feature (`result.incapable`) are not blamed for a missing key."""
    if result.errors:
        return combined(name, list(result.errors))
    if result.wait_s is not None:
        return LLMProviderError(
            f"{name}: every deployment is cooling down or at its rate limit for another "
            f"{result.wait_s:.1f} s (longer than max_wait_s, or max_retries waits made)",
            retry_after=result.wait_s,
        )
    keyless = [
        (m.deployment_id, no_key(m))
        for m in route
        if not has_key[m.deployment_id] and m.deployment_id not in result.incapable
    ]
    if keyless:
        return combined(name, keyless)
    return ContextTooLong(f"{name}: no deployment's context window fits this request")


def combined(name: str, errors: list[tuple[str, LLMProviderError]]) -> LLMProviderError:
    """The last failure's class, its fields, and every attempt in the message."""
    if not errors:
        return LLMProviderError(f"{name}: no deployment could be tried")
    last = errors[-1][1]
    if len(errors) == 1:
        return last
    summary = "; ".join(f"{dep}: {type(e).__name__}: {e}" for dep, e in errors)
    error = type(last)(f"{name}: all candidates failed: {summary}", **last.fields)
    error.__cause__ = last
    return error
