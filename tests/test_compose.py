"""docker-compose.yml is correct even though Docker does not run here: every service has the
wiring it needs and every command names a real entry point of ours."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llmq.cli import app

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LLMQ_SERVICES = ["migrate", "worker", "beat", "flower", "metrics", "serve"]


def test_required_services_exist() -> None:
    assert {"postgres", "redis", *LLMQ_SERVICES} <= set(SERVICES)


@pytest.mark.parametrize("name", ["postgres", "redis"])
def test_backing_services_have_healthchecks(name: str) -> None:
    assert SERVICES[name]["healthcheck"]["test"]


@pytest.mark.parametrize("name", LLMQ_SERVICES)
def test_llmq_service_commands_are_real_entry_points(name: str) -> None:
    command = SERVICES[name]["command"]
    assert command[0] == "llmq", command
    # `llmq <group> [<sub>] --help` must resolve: a typo or a missing command fails here
    words = [w for w in command[1:] if not w.startswith("-")][:2]
    path = words if name == "migrate" else words[:1]
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, (name, command, result.output)
    for flag in (w for w in command[1:] if w.startswith("--")):
        assert flag in result.output, f"{name}: {flag} is not an option of `llmq {' '.join(path)}`"


@pytest.mark.parametrize("name", LLMQ_SERVICES)
def test_llmq_services_are_wired_to_postgres_and_redis(name: str) -> None:
    env = SERVICES[name]["environment"]
    assert env["LLMQ_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:" in env["LLMQ_DATABASE_URL"]
    assert env["LLMQ_BROKER_URL"] == "redis://redis:6379/0"
    if name != "migrate":
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("schemas", "core", "workers", "producer", "llmq", "simulator", "migrations"):
        assert f"COPY {package} {package}" in dockerfile


def test_serve_is_published_and_its_healthcheck_hits_a_real_route() -> None:
    from llmq.serve.routes import router

    serve = SERVICES["serve"]
    port = serve["command"][serve["command"].index("--port") + 1]
    assert f"127.0.0.1:{port}:{port}" in serve["ports"]
    probe = " ".join(serve["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/health" in probe
    assert "/health" in {getattr(r, "path", None) for r in router.routes}


def test_prometheus_service_loads_the_shipped_config_and_rules() -> None:
    prom = SERVICES["prometheus"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in prom["volumes"] if m.startswith("./")}
    assert mounts["./monitoring/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    # rule files resolve next to the config file inside the container
    for rule_file in config["rule_files"]:
        assert mounts[f"./monitoring/{rule_file}"] == f"/etc/prometheus/{rule_file}"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    # it scrapes the `metrics` service on the port that service serves
    metrics_cmd = SERVICES["metrics"]["command"]
    port = metrics_cmd[metrics_cmd.index("--port") + 1]
    targets = [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    assert f"metrics:{port}" in targets
    assert "metrics" in prom["depends_on"]
