"""`llmq doctor` against real services: all green on a healthy set-up; each broken piece named,
with its fix, and a non-zero exit code."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from llmq.cli import app
from tests.chaos.services import free_port
from tests.conftest import PG_ADMIN_URL
from tests.helpers.llm_config import model, write_llm_config
from tests.helpers.worker import PROVIDER_KEY_VARS


@pytest.fixture(scope="module")
def sim() -> Iterator[object]:
    from simulator.server import start_in_thread

    server = start_in_thread()
    yield server
    server.stop()


def doctor(env: dict[str, str | None], *args: str) -> tuple[int, dict]:
    base: dict[str, str | None] = {k: None for k in PROVIDER_KEY_VARS}
    result = CliRunner().invoke(
        app, ["doctor", "--json", "--timeout", "2", *args], env={**base, **env}
    )
    return result.exit_code, json.loads(result.output)


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def healthy_env(tmp_path: Path, pg_url: str, redis_url: str, sim_url: str) -> dict[str, str | None]:
    config = write_llm_config(
        tmp_path / "llm_config.yaml", sim_url, [model("m", "openai"), model("m", "anthropic")]
    )
    return {
        "LLMQ_DATABASE_URL": pg_url,
        "LLMQ_BROKER_URL": redis_url,
        "LLMQ_CONFIG": str(config),
        "LLMQ_DOTENV": str(tmp_path / "none.env"),
    }


def test_all_green_on_a_healthy_setup(tmp_path: Path, pg_url: str, redis_url: str, sim) -> None:
    code, report = doctor(healthy_env(tmp_path, pg_url, redis_url, sim.url))
    checks = by_name(report)
    assert code == 0 and report["ok"], report
    assert {"config", "timings", "database", "migrations", "broker"} <= set(checks)
    assert checks["key openai"]["status"] == "ok" and checks["reach openai"]["status"] == "ok"
    assert all(c["status"] == "ok" for c in report["checks"]), report


def test_names_each_broken_piece_and_its_fix(
    tmp_path: Path, pg_url: str, redis_url: str, sim
) -> None:
    env = healthy_env(tmp_path, pg_url, redis_url, sim.url)
    data = yaml.safe_load(Path(env["LLMQ_CONFIG"]).read_text())
    del data["providers"]["openai"]["api_key"]  # the only deployment of the default model
    data["providers"]["anthropic"]["api_base"] = f"http://127.0.0.1:{free_port()}"  # nobody there
    data["models"] = [model("m", "openai"), model("other", "anthropic")]
    Path(env["LLMQ_CONFIG"]).write_text(yaml.safe_dump(data))
    env.update(
        LLMQ_DATABASE_URL=pg_url.rsplit("/", 1)[0] + "/llmq_no_such_db",
        LLMQ_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
        LLMQ_VISIBILITY_TIMEOUT_S="100",
    )
    code, report = doctor(env)
    checks = by_name(report)
    assert code == 1 and not report["ok"]
    for name in ("database", "broker", "timings", "key openai", "reach anthropic"):
        assert checks[name]["status"] == "FAIL", (name, checks[name])
        assert checks[name]["fix"], name
    assert "OPENAI_API_KEY" in checks["key openai"]["fix"]
    assert "LLMQ_VISIBILITY_TIMEOUT_S" in checks["timings"]["fix"]
    assert "migrations" not in checks  # nothing to check without a database


def test_a_database_behind_head_says_upgrade(tmp_path: Path, redis_url: str, sim, pg_url) -> None:
    name = f"llmq_doctor_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        code, report = doctor(healthy_env(tmp_path, url, redis_url, sim.url), "--no-probe")
        check = by_name(report)["migrations"]
        assert code == 1 and check["status"] == "FAIL"
        assert "llmq db upgrade" in check["fix"]
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_broken_config_file_is_reported(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    bad = tmp_path / "llm_config.yaml"
    bad.write_text("models: [\n")
    env = {"LLMQ_DATABASE_URL": pg_url, "LLMQ_BROKER_URL": redis_url, "LLMQ_CONFIG": str(bad)}
    code, report = doctor(env)
    check = by_name(report)["config"]
    assert code == 1 and check["status"] == "FAIL" and "YAML" in check["detail"]
    assert by_name(report)["database"]["status"] == "ok"  # the other checks still run
