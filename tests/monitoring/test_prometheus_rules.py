"""The shipped Prometheus config and alert rules load in Prometheus' own checker, and each
alert fires in its rule test (`promtool`, Debian's `prometheus` package; scripts/tools.sh
installs it). Locally a missing promtool skips; under CI=true it fails."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if IN_CI:
            pytest.fail("promtool is missing in CI (scripts/tools.sh installs `prometheus`)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return found


def _run(*args: str) -> str:
    done = subprocess.run(
        [_promtool(), *args], cwd=MONITORING, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_config_is_valid() -> None:
    out = _run("check", "config", "prometheus.yml")
    assert "1 rule files found" in out


def test_rules_are_valid() -> None:
    out = _run("check", "rules", "alerts.yml")
    assert "6 rules found" in out


def test_every_alert_fires_in_its_rule_test() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    cases = yaml.safe_load((MONITORING / "alerts_test.yml").read_text())["tests"]
    fired = {
        t["alertname"] for case in cases for t in case["alert_rule_test"] if t.get("exp_alerts")
    }
    assert alerts == fired, f"alerts without a firing case: {sorted(alerts - fired)}"
    _run("test", "rules", "alerts_test.yml")


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The rule test can fail: the same cases expecting the wrong labels do."""
    _promtool()
    shutil.copy(MONITORING / "alerts.yml", tmp_path / "alerts.yml")
    text = (MONITORING / "alerts_test.yml").read_text().replace("tenant: team-c", "tenant: nobody")
    (tmp_path / "alerts_test.yml").write_text(text)
    done = subprocess.run(
        [_promtool(), "test", "rules", "alerts_test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0


def test_rules_use_metric_names_llmq_serves(engine, clean_db: str) -> None:  # type: ignore[no-untyped-def]
    """Every llmq_* name in the rules is one the ledger collector exposes (read from a real
    scrape of it), or one of the batch-lane gauges."""
    import re

    from prometheus_client import CollectorRegistry, generate_latest

    from workers.observability.metrics import LedgerCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(engine))
    text = generate_latest(registry).decode()
    served = set(re.findall(r"^# TYPE (llmq_[a-z_]+) (\w+)", text, re.M))
    # a counter's samples carry `_total` (whether or not its TYPE line spells it)
    names = {
        n + ("_total" if kind == "counter" and not n.endswith("_total") else "")
        for n, kind in served
    }
    lanes = {"llmq_provider_batches_open", "llmq_provider_batch_oldest_age_seconds"}
    used = set(re.findall(r"llmq_[a-z_]+", (MONITORING / "alerts.yml").read_text()))
    assert used, "no metric names found in alerts.yml"
    assert used <= names | lanes, sorted(used - names - lanes)
