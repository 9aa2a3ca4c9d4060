"""The retry policy: what to do after a failed attempt, and how long to back off.

Owns: `Decision`, `decide` and `backoff_s`, pure functions of the error's class, the attempt
number, the policy, the number of other candidates and a random number passed in. Must not: read
messages or status text (classification is by class, done once in the provider layer), touch
Redis or the database, sleep, or read the clock.

The table `decide` implements (attempt budget checked after it; `n` = candidates left):

    error                                      n > 0                      n == 0
    RateLimited, ProviderUnavailable           fallback now, keep         retry_later(backoff)
    ProviderTimeout, other transient           retry_later(backoff)       retry_later(backoff)
    AuthFailed, ModelUnavailable,
      InsufficientCredit, other rejected       fallback now, exclude      fail
    MalformedReply                             fallback now, exclude      retry_later(backoff)
    InvalidOutput                              fallback now, exclude      retry_later(backoff)
    ContextTooLong                             fallback now, exclude      fail
    BadRequest, ContentFiltered, Refused,
      other request                            fail                       fail
    LLMProviderError itself (unclassified)     retry_later(backoff)       retry_later(backoff)
    anything else (our own bug, infra)         fail (internal)            fail (internal)

- "keep" (exclude=False): the failed deployment is cooling down (the health store sets a
  cooldown for every RateLimited/ProviderUnavailable), so the router skips it by itself and
  may come back to it once it recovers.
- A timeout is retried later rather than moved at once: the request may simply be slow, a
  fallback is likely as slow, and the call may have been billed. Repeated timeouts open the
  circuit, and then the router moves on.
- MalformedReply excludes the deployment for this job when there is somewhere else to go: a
  body we cannot parse is more often systematic (a changed format, a proxy's HTML page) than a
  one-off, and retrying it would spend the job's budget and money on the same broken reply.
  With nowhere else to go it is retried after a backoff, in case it *was* a one-off.
- InvalidOutput (JSON that does not parse or fit its schema, unusable tool calls) is a model's
  sampling failure, not the endpoint's: another deployment (another model or provider) is the
  best next try, so it moves on and excludes the one that failed; with nowhere else to go the
  same deployment is asked again after a backoff (sampling differs per call). When the budget
  ends on it, the job fails `invalid_output`, not `attempts_exhausted`: that is the honest
  reason it has no valid answer (the reply is kept in the job's error).
- Refused (the model declined: OpenAI `message.refusal`, Anthropic `stop_reason: refusal`)
  fails at once as `refused`, like ContentFiltered. A refusal is the model's verdict on the
  content, not a transient fault: retrying would bill the same refusal again, and shopping
  the prompt around providers until one complies would launder a safety decision. The caller
  sees the refusal and may resubmit with another model.
- One budget: once `attempt_no >= policy.max_attempts`, anything but an outright failure
  becomes `fail(attempts_exhausted)`, whether it would have retried or fallen back (InvalidOutput
  keeps its own kind, above).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.errors import (
    ContextTooLong,
    InvalidOutput,
    LLMProviderError,
    MalformedReply,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)
from schemas.config import RoutingSettings
from schemas.job import ErrorKind

Action = Literal["retry_later", "fallback", "fail"]

# Beyond 2**62 the doubling only risks float overflow; the cap applies long before.
_MAX_DOUBLINGS = 62
# Jitter takes up to a quarter off each delay, so workers that failed together spread out.
_JITTER = 0.25


@dataclass(frozen=True, slots=True)
class Decision:
    """What the pipeline does next. `delay_s` in seconds (0 for fallback and fail); `exclude`
    = never use the failed deployment again for this job; `kind` = why the attempt failed
    (or `attempts_exhausted` when the budget ended it)."""

    action: Action
    delay_s: float
    exclude: bool
    kind: ErrorKind


def backoff_s(n: int, retry_after: float | None, policy: RoutingSettings, rng: float) -> float:
    """Seconds to wait before retry number `n` (0-based).

    min(base * 2**n, max) * (1 - 0.25 * rng), then never below `retry_after`: the cap bounds our
    own backoff, not what the provider asked for.
    """
    n = min(max(n, 0), _MAX_DOUBLINGS)
    rng = min(max(rng, 0.0), 1.0)
    delay = min(policy.backoff_base_s * 2.0**n, policy.backoff_max_s) * (1 - _JITTER * rng)
    return max(delay, retry_after or 0.0)


def cap_retry_after(seconds: float | None, cap_s: float) -> float | None:
    """The part of a provider's Retry-After llmq honours: `seconds` cut to `cap_s` (issue 20).

    A provider may ask for 999999999 s (a job parked until 2058) or send an HTTP date decades
    ahead. Beyond the cap the deployment cools down for `cap_s` only, and the job moves on to
    another candidate or waits at most `cap_s`. None (no Retry-After) and anything negative or
    NaN stay "none given". Applied where the error is made (the adapter base), so the
    cooldown, the retry delay and every stored `retry_after` agree.
    """
    if seconds is None or not seconds >= 0:  # `not >=` also catches NaN
        return None
    return min(seconds, max(cap_s, 0.0))


def decide(
    error: Exception,
    attempt_no: int,
    policy: RoutingSettings,
    candidates_left: int,
    rng: float,
) -> Decision:
    """The next step after attempt number `attempt_no` (1-based) failed with `error`.

    Args:
        error: what the attempt raised; only its class (and `retry_after`) matter.
        attempt_no: the attempt that just failed, counting retries and fallbacks together.
        policy: the routing settings (budget, backoff).
        candidates_left: deployments ranked after the failed one in this attempt's plan.
        rng: a number in [0, 1) for the backoff jitter.
    """
    if not isinstance(error, LLMProviderError):
        return Decision("fail", 0.0, False, ErrorKind.INTERNAL)
    kind = ErrorKind(error.kind)
    action, exclude = _classify(error, candidates_left)
    if action == "fail":
        return Decision("fail", 0.0, False, kind)
    if attempt_no >= policy.max_attempts:
        final = kind if isinstance(error, InvalidOutput) else ErrorKind.ATTEMPTS_EXHAUSTED
        return Decision("fail", 0.0, False, final)
    if action == "fallback":
        return Decision("fallback", 0.0, exclude, kind)
    delay = backoff_s(attempt_no - 1, error.retry_after, policy, rng)
    return Decision("retry_later", delay, False, kind)


def _classify(error: LLMProviderError, candidates_left: int) -> tuple[Action, bool]:
    """The table in the module docstring, before the attempt budget: (action, exclude)."""
    elsewhere = candidates_left > 0
    if isinstance(error, RequestRejected):
        if isinstance(error, ContextTooLong) and elsewhere:
            return "fallback", True
        return "fail", False
    if isinstance(error, MalformedReply | InvalidOutput):
        return ("fallback", True) if elsewhere else ("retry_later", False)
    if isinstance(error, ProviderRejected):
        return ("fallback", True) if elsewhere else ("fail", False)
    if isinstance(error, RateLimited | ProviderUnavailable) and elsewhere:
        return "fallback", False
    return "retry_later", False
