"""Redaction micro-benchmark: what `RedactionFilter.filter` costs per log record.

`python -m bench.redaction` prints microseconds of CPU per record (best of 7 runs of 20,000,
record creation subtracted) for a typical `provider_call` line, the same line with a key
fragment in it (the slow path that rewrites it), and a short line; six configured secrets.
Goal: under ~20 us a record on the typical line (the hot path calls it per record).
"""

from __future__ import annotations

import logging
import time
import timeit

from workers.observability.redaction import RedactionFilter

SECRETS = [
    "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0",
    "sk-ant-api03-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp",
    "AIzaSyD-abcdefghijklmnopqrstuvwx12345",
    "co-Jk8Lm2Np4Qr6St8Uv0Wx2Yz4",
    "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "gw-secret-Hd6Fj8Gk1Ls3Qa5",
]
LINE = (
    "provider_call job_id=1960a9d3-9f59-449e-a512-1227c03e5eb5 "
    "batch_id=67fca523-1c81-4cbf-afc3-8f406351553b attempt_no=1 provider=openai "
    "model=gpt-4o-mini deployment=openai/gpt-4o-mini status=200 outcome=succeeded "
    "error_kind=- latency_ms=412 prompt_tokens=153 completion_tokens=48 cost_usd=0.0000517"
)


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("workers.attempt", logging.INFO, "x.py", 1, msg, None, None)


def _us(fn: object, n: int = 20000) -> float:
    runs = timeit.repeat(fn, number=n, repeat=7, timer=time.process_time)  # type: ignore[arg-type]
    return min(runs) / n * 1e6


def main() -> None:
    flt = RedactionFilter(SECRETS)
    cases = {
        "typical provider_call line (300 chars)": LINE,
        "same line + a key minus 5 chars": LINE + " echoed=" + SECRETS[0][:-5],
        "short line": "worker_ready hostname=w1 pool=threads concurrency=8",
    }
    for name, msg in cases.items():
        base = _us(lambda m=msg: _record(m))
        print(f"{name}: {_us(lambda m=msg: flt.filter(_record(m))) - base:.1f} us/record")


if __name__ == "__main__":
    main()
