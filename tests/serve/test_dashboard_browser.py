"""The dashboard in a real browser (headless Debian chromium driven by Selenium through
chromium-driver) against `llmq serve`, on a ledger filled by real workers and the simulator.

The figures a page shows are compared with `llmq status --json` and `llmq usage --json` on the
same ledger; another tenant's batch and job answer 404; cancel works from the batch page with
its CSRF token and is refused without it. Screenshots of the three pages go to tmp_path, or to
$LLMQ_DASHBOARD_SCREENSHOTS (the README's come from `LLMQ_DASHBOARD_SCREENSHOTS=docs`).
Locally a missing chromium/chromedriver/selenium skips; under CI=true it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.ledger import api_keys_repo
from core.ledger.models import Attempt, Job
from llmq.cli import app
from producer.client import Client
from tests.conftest import IN_CI

from .conftest import Served, batch_lines, write_lines


def _need(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is missing in CI (scripts/tools.sh installs it)")
    pytest.skip(f"{what} not installed")


@pytest.fixture()
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _need("selenium (the dev extras)")
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        _need("chromium / chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(arg)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(30)
    yield chrome
    chrome.quit()


def _cli(db_url: str, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env={"LLMQ_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _key(served: Served, tenant: str, admin: bool = False) -> str:
    with Session(served.rig.engine) as s, s.begin():
        _, key = api_keys_repo.create_key(s, tenant, None, datetime.now(UTC), admin=admin)
    return key


def _sign_in(browser: Any, root: str, key: str) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(root + "/login")
    browser.find_element(By.NAME, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    _wait(browser, lambda b: b.current_url == root + "/")


def _wait(browser: Any, until: Any) -> None:
    """A click starts a navigation; wait for the page it leads to (Selenium does not)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 15).until(until, message=browser.page_source[-700:])


def _text(browser: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.ID, element_id).text.strip())


def _shots() -> Path | None:
    folder = os.environ.get("LLMQ_DASHBOARD_SCREENSHOTS")
    return Path(folder) if folder else None


def _fill(served: Served, tmp_path: Path) -> dict[str, Any]:
    """Two tenants' batches run to the end by a real worker; then a third batch, queued with
    no worker left to take it, for the cancel button."""
    rig = served.rig
    client = Client(rig.database_url, rig.redis_url, env={"LLMQ_CONFIG": str(rig.config_path)})
    a_path = write_lines(tmp_path / "a.jsonl", batch_lines(6, prefix="a"))
    b_path = write_lines(tmp_path / "b.jsonl", batch_lines(2, prefix="b"))
    a = client.submit(a_path, name="team-a nightly", tenant="team-a")
    b = client.submit(b_path, name="team-b", tenant="team-b")
    workers = rig.start(1, concurrency=4)
    for bid in (a, b):
        status = client.wait(bid, poll_s=0.2, timeout_s=90)
        assert status.counts["succeeded"] == status.total, (status, rig.logs())
    for w in workers:
        w.kill()
    c_path = write_lines(tmp_path / "c.jsonl", batch_lines(5, prefix="c"))
    c = client.submit(c_path, name="to cancel", tenant="team-a")
    client.close()
    return {"a": str(a), "b": str(b), "c": str(c)}


def test_dashboard_pages_match_the_ledger(served: Served, browser: Any, tmp_path: Path) -> None:  # noqa: PLR0915 - one end-to-end story
    from selenium.webdriver.common.by import By

    ids = _fill(served, tmp_path)
    db = served.rig.database_url
    root = served.url.removesuffix("/v1")
    shots = _shots() or tmp_path
    key_a = _key(served, "team-a")

    # sign-in: the cookie is HttpOnly and holds no part of the key
    browser.get(root + "/")
    assert "/login" in browser.current_url
    _sign_in(browser, root, key_a)
    cookie = browser.get_cookie("llmq_session")
    assert cookie["httpOnly"] is True and key_a not in cookie["value"]
    assert key_a[5:13] not in cookie["value"] and key_a[-8:] not in browser.page_source

    # batch list: team-a's two batches, not team-b's
    listed = browser.find_element(By.ID, "batches").text
    assert "team-a nightly" in listed and "to cancel" in listed and "team-b" not in listed
    browser.save_screenshot(str(shots / "dashboard-batches.png"))

    # batch page = `llmq status --json`
    browser.get(f"{root}/batches/{ids['a']}")
    status = _cli(db, "status", ids["a"], "--json")
    assert _text(browser, "cost-usd") == status["cost_usd"]
    assert int(_text(browser, "prompt-tokens")) == status["usage"]["prompt_tokens"]
    assert int(_text(browser, "completion-tokens")) == status["usage"]["completion_tokens"]
    for state, n in status["counts"].items():
        assert int(_text(browser, f"count-{state}")) == n, state
    assert _text(browser, "cache-saved") == status["cache"]["saved_usd"]
    provider_rows = browser.find_element(By.ID, "providers").text
    for provider, figures in status["providers"].items():
        assert f"{provider} {figures['jobs']} {figures['attempts']} {figures['cost_usd']}" in (
            provider_rows
        )

    # job page: the attempt timeline lists every attempt row of that job
    browser.find_element(By.CSS_SELECTOR, "#slowest a").click()
    _wait(browser, lambda b: "/jobs/" in b.current_url)
    job_id = browser.current_url.rsplit("/", 1)[-1]
    with Session(served.rig.engine) as s:
        n_attempts = s.scalar(select(func.count()).where(Attempt.job_id == job_id))
    rows = browser.find_elements(By.CSS_SELECTOR, "#attempts tbody tr")
    assert len(rows) == n_attempts >= 1
    assert browser.find_element(By.ID, "timeline").tag_name == "svg"

    # spend = `llmq usage --json` for the tenant
    browser.get(root + "/spend?days=7")
    usage = _cli(db, "usage", "--tenant", "team-a", "--since", "7d", "--json")["total"]
    assert _text(browser, "spend-cost") == usage["cost_usd"]
    assert int(_text(browser, "spend-tokens")) == usage["total_tokens"]
    assert int(_text(browser, "spend-attempts")) == usage["attempts"]
    assert int(_text(browser, "spend-cache-hits")) == usage["cache_hits"]
    assert _text(browser, "spend-saved") == usage["saved_usd"]
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-cost rect")
    assert "team-b" not in browser.find_element(By.ID, "quota").text
    browser.save_screenshot(str(shots / "dashboard-spend.png"))

    # providers: the configured deployment, with the last hour's calls from the ledger
    browser.get(root + "/providers")
    with Session(served.rig.engine) as s:
        calls = s.scalar(select(func.count()).where(Attempt.outcome == "succeeded"))
    table = browser.find_element(By.ID, "deployments").text
    dep = _deployment(served)
    assert dep in table and f" {calls} 100%" in table, table
    browser.save_screenshot(str(shots / "dashboard-providers.png"))

    # another tenant's batch and job: 404, in the browser and by status code
    browser.get(f"{root}/batches/{ids['b']}")
    assert "Not found" in browser.title
    session = {"llmq_session": cookie["value"]}
    with Session(served.rig.engine) as s:
        b_job = s.scalar(select(Job.id).where(Job.tenant == "team-b").limit(1))
    for path in (f"/batches/{ids['b']}", f"/jobs/{b_job}"):
        assert httpx.get(root + path, cookies=session).status_code == 404, path
    assert httpx.get(f"{root}/batches/{ids['a']}", cookies=session).status_code == 200

    # cancel: refused without the form's token, done with it (the button)
    bad = httpx.post(f"{root}/batches/{ids['c']}/cancel", cookies=session, data={"csrf": "x"})
    assert bad.status_code == 403
    assert _cli(db, "status", ids["c"], "--json")["counts"]["queued"] == 5
    browser.get(f"{root}/batches/{ids['c']}")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/cancel'] button").click()
    _wait(browser, lambda b: "notice=" in b.current_url)
    assert "cancelled 5 jobs" in _text(browser, "notice")
    after = _cli(db, "status", ids["c"], "--json")
    assert after["state"] == "cancelled" and after["counts"]["cancelled"] == 5
    assert _text(browser, "count-cancelled") == "5"

    # team-b cannot cancel team-a's batch even with its own valid token
    _sign_in(browser, root, _key(served, "team-b"))
    browser.get(f"{root}/batches/{ids['a']}")
    assert "Not found" in browser.title


def _deployment(served: Served) -> str:
    with Session(served.rig.engine) as s:
        return str(s.scalar(select(Attempt.deployment).limit(1)))


def test_admin_sees_every_tenant(served: Served, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    ids = _fill(served, tmp_path)
    root = served.url.removesuffix("/v1")
    _sign_in(browser, root, _key(served, "ops", admin=True))
    listed = browser.find_element(By.ID, "batches").text
    assert "team-a nightly" in listed and "team-b" in listed
    browser.get(f"{root}/batches/{ids['b']}")
    assert _text(browser, "tenant") == "team-b"
    browser.get(root + "/spend?days=7&tenant=team-b")
    usage = _cli(served.rig.database_url, "usage", "--tenant", "team-b", "--since", "7d", "--json")
    assert _text(browser, "spend-cost") == usage["total"]["cost_usd"]
    browser.get(root + "/spend?days=7")
    everyone = _cli(served.rig.database_url, "usage", "--since", "7d", "--json")["total"]
    assert int(_text(browser, "spend-attempts")) == everyone["attempts"]


def test_sessions_are_signed_and_keys_stay_out_of_urls(served: Served) -> None:
    root = served.url.removesuffix("/v1")
    key = _key(served, "team-a")
    signed_in = httpx.post(root + "/login", data={"key": key, "next": "//evil.example/x"})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    token = signed_in.cookies["llmq_session"]
    assert key not in token and key not in signed_in.headers["set-cookie"]
    assert "httponly" in signed_in.headers["set-cookie"].lower()
    assert httpx.get(root + "/", cookies={"llmq_session": token}).status_code == 200
    key_id, expires, sig = token.split(".")
    forged = f"{key_id}.{int(expires) + 3600}.{sig}"
    for bad in (forged, token[:-2] + "xx", "nonsense", ""):
        r = httpx.get(root + "/", cookies={"llmq_session": bad})
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), bad
    wrong = httpx.post(root + "/login", data={"key": "llmq-not-a-key"})
    assert wrong.status_code == 401 and "Unknown or revoked key" in wrong.text
    # a key in the query string is not a way in
    assert httpx.get(root + "/", params={"key": key}).status_code == 303
    # revoking the key ends its sessions
    listed = _cli(served.rig.database_url, "keys", "list", "--json")
    CliRunner().invoke(app, ["keys", "revoke", listed[0]["id"]],
                       env={"LLMQ_DATABASE_URL": served.rig.database_url})  # fmt: skip
    assert httpx.get(root + "/", cookies={"llmq_session": token}).status_code == 303
    assert re.fullmatch(r"key_[0-9a-f]{16}", key_id)


def test_keys_create_admin(served: Served) -> None:
    """`llmq keys create --admin` makes a key the dashboard shows every tenant; `keys list`
    says which keys are admin keys; the API still acts as the key's own tenant."""
    db, root = served.rig.database_url, served.url.removesuffix("/v1")
    made = _cli(db, "keys", "create", "--tenant", "ops", "--admin", "--json")
    plain = _cli(db, "keys", "create", "--tenant", "team-a", "--json")
    assert made["admin"] is True and plain["admin"] is False
    listed = {k["id"]: k["admin"] for k in _cli(db, "keys", "list", "--json")}
    assert listed == {made["id"]: True, plain["id"]: False}
    page = httpx.post(root + "/login", data={"key": made["key"]}, follow_redirects=True)
    assert "admin: all tenants" in page.text
    page = httpx.post(root + "/login", data={"key": plain["key"]}, follow_redirects=True)
    assert page.status_code == 200 and "admin" not in page.text
