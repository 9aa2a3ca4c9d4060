"""Choosing a deployment for each attempt.

`select` ranks deployments for a request (pure); `health` holds the shared availability state
the ranking reads (cooldowns, circuit breakers, rate-limit windows, latency/success records).
The retry policy that reacts to a failed attempt lives in `workers.retry`.
"""
