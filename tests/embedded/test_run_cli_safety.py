"""Issue 20 item 9: `llmq run`, `results`, `job` and `providers --check` as a user runs them.

Each test is a subprocess `llmq ...` in a fresh folder (no LLMQ_* set, no keys): the results
path is checked before any call, the input file is never overwritten, a rejected file leaves
no ledger, LLMQ_LOG_JSON reaches the run's log, our JSONL escapes line-breaking characters,
provider text is shown escaped, and an unreachable database is one line, not a traceback.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.embedded.clean_env import llmq, read_jsonl, write_jsonl

# custom_ids carry the characters that break line splitting: they come back in every result
TRICKY_IDS = ["plain", "ls\u2028ps\u2029nel\u0085end", "ctl\x0b\x0c\x1c\x1d\x1eend", "é✓"]
BREAKERS = "\u2028\u2029\u0085\x0b\x0c\x1c\x1d\x1e"


def _assert_rejected_before_anything(proc: Any, cwd: Path, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert not (cwd / ".llmq" / "ledger.db").exists(), "nothing may be submitted"


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded run of TRICKY_IDS with LLMQ_LOG_JSON=1; returns its folder."""
    cwd = tmp_path_factory.mktemp("ran")
    with open(cwd / "in.jsonl", "w", encoding="utf-8") as f:
        for cid in TRICKY_IDS:
            f.write(json.dumps({"custom_id": cid, "prompt": "Say hi."}) + "\n")
    proc = llmq(["run", "in.jsonl", "-o", "out.jsonl"], cwd, LLMQ_LOG_JSON="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd


def test_results_file_escapes_line_breaking_characters_and_keeps_other_text(ran: Path) -> None:
    raw = (ran / "out.jsonl").read_text(encoding="utf-8")
    assert not any(c in raw for c in BREAKERS)
    assert "é✓" in raw  # other non-ASCII stays raw
    lines = raw.splitlines()  # splits at every breaker: must still be one line per result
    assert [json.loads(line)["custom_id"] for line in lines] == TRICKY_IDS


def test_llmq_results_escapes_them_too(ran: Path) -> None:
    url = f"sqlite:///{ran / '.llmq' / 'ledger.db'}"
    batch = read_jsonl(ran / "out.jsonl")[0]["job_id"]
    proc = llmq(["job", batch, "--json"], ran, LLMQ_DATABASE_URL=url)
    batch_id = json.loads(proc.stdout)["job"]["batch_id"]
    out = llmq(["results", batch_id], ran, LLMQ_DATABASE_URL=url)
    assert out.returncode == 0, out.stderr
    assert not any(c in out.stdout for c in BREAKERS)
    assert [json.loads(x)["custom_id"] for x in out.stdout.splitlines()] == TRICKY_IDS


def test_log_json_is_honoured_by_run(ran: Path) -> None:
    lines = (ran / ".llmq" / "llmq.log").read_text(encoding="utf-8").splitlines()
    assert lines, "the run logs at least its start"
    for line in lines:
        assert isinstance(json.loads(line), dict), line


def test_output_that_is_a_directory_is_refused_before_any_call(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", 3)
    (tmp_path / "outdir").mkdir()
    proc = llmq(["run", "in.jsonl", "-o", "outdir"], tmp_path)
    _assert_rejected_before_anything(proc, tmp_path, "-o outdir", "directory")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_output_that_cannot_take_data_is_refused_before_any_call(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", 3)
    proc = llmq(["run", "in.jsonl", "-o", "/dev/full"], tmp_path)
    _assert_rejected_before_anything(proc, tmp_path, "-o /dev/full", "No space left")


@pytest.mark.parametrize("spelling", ["in.jsonl", "./sub/../in.jsonl", "link.jsonl"])
def test_output_equal_to_the_input_is_refused(tmp_path: Path, spelling: str) -> None:
    write_jsonl(tmp_path / "in.jsonl", 3)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "in.jsonl")
    before = (tmp_path / "in.jsonl").read_bytes()
    proc = llmq(["run", "in.jsonl", "-o", spelling], tmp_path)
    _assert_rejected_before_anything(proc, tmp_path, "input file")
    assert (tmp_path / "in.jsonl").read_bytes() == before


def test_rejected_file_creates_no_ledger(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"custom_id": "a", "prompt": "x"}\n[1]\n')
    proc = llmq(["run", "bad.jsonl"], tmp_path)
    _assert_rejected_before_anything(proc, tmp_path, "line 2: expected a JSON object")
    assert not (tmp_path / ".llmq").exists()


def test_bom_on_line_two_is_named(tmp_path: Path) -> None:
    line = json.dumps({"custom_id": "a", "prompt": "x"})
    second = json.dumps({"custom_id": "b", "prompt": "y"})
    (tmp_path / "in.jsonl").write_text(f"\ufeff{line}\n\ufeff{second}\n", encoding="utf-8")
    proc = llmq(["run", "in.jsonl"], tmp_path)
    _assert_rejected_before_anything(
        proc, tmp_path, "line 2: byte order mark (U+FEFF) in the middle of the file"
    )
    assert "line 1" not in proc.stderr  # a BOM at the start of the file is fine


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_results_that_cannot_be_written_say_how_to_get_them(ran: Path) -> None:
    url = f"sqlite:///{ran / '.llmq' / 'ledger.db'}"
    job_id = read_jsonl(ran / "out.jsonl")[0]["job_id"]
    batch_id = json.loads(llmq(["job", job_id, "--json"], ran, LLMQ_DATABASE_URL=url).stdout)[
        "job"
    ]["batch_id"]
    proc = llmq(["results", batch_id, "-o", "/dev/full"], ran, LLMQ_DATABASE_URL=url)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "could not write the results to /dev/full" in proc.stderr
    assert f"llmq results {batch_id} -o FILE" in proc.stderr


def test_job_shows_provider_text_escaped_and_json_exact(ran: Path) -> None:
    ledger = ran / ".llmq" / "ledger.db"
    job_id = read_jsonl(ran / "out.jsonl")[0]["job_id"]
    hostile = "\x1b[2J\x1b[31mfake\nattempt #9 succeeded\rX\u2028Y"
    with sqlite3.connect(ledger) as db:  # as a provider's error body would be stored
        db.execute(
            "UPDATE attempts SET error_kind = 'bad_request', error_message = ? "
            "WHERE replace(job_id, '-', '') = ?",
            (hostile, job_id.replace("-", "")),
        )
        assert db.total_changes >= 1
    env = {"LLMQ_DATABASE_URL": f"sqlite:///{ledger}"}
    human = llmq(["job", job_id], ran, **env)
    assert human.returncode == 0, human.stderr
    assert "\x1b" not in human.stdout and "\u2028" not in human.stdout
    assert "\\x1b[2J\\x1b[31mfake\\nattempt #9 succeeded\\rX\\u2028Y" in human.stdout
    exact = json.loads(llmq(["job", job_id, "--json"], ran, **env).stdout)
    assert [a["error_message"] for a in exact["attempts"]][0] == hostile


@pytest.mark.parametrize(
    "command", [["providers", "--check"], ["nightly", "report"], ["nightly", "run", "--now"]]
)
def test_commands_with_the_database_down_print_one_line(tmp_path: Path, command: list[str]) -> None:
    proc = llmq(
        command,
        tmp_path,
        LLMQ_DATABASE_URL="postgresql+psycopg://llmq:hunter2secret@127.0.0.1:1/llmq",
        # Redis up: only the database is down (a down Redis adds its own warning line)
        LLMQ_BROKER_URL=os.environ.get("LLMQ_TEST_REDIS", "redis://127.0.0.1:6379/0"),
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    assert "unreachable" in lines[0] and "127.0.0.1:1" in lines[0]
    assert "hunter2secret" not in proc.stderr + proc.stdout
