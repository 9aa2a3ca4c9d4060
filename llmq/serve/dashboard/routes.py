"""The dashboard's routes: sign-in, the batch list, a batch, a job, spend, providers, and the
cancel and resume buttons.

Owns: paths, the session check (an unsigned-in GET goes to /login; a POST also needs the
form's CSRF token), tenant visibility (another tenant's batch or job answers 404, as a missing
one), and calling the ledger's repos and the producer's publish for resume. Ledger work runs
in plain `def` routes (FastAPI's thread pool), like the API's. Must not: accept a key anywhere
but the sign-in form's body, or render anything without `views`/`html`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.ledger import (
    api_batches_repo,
    batch_control_repo,
    batch_reads_repo,
    dashboard_reads_repo,
)
from core.ledger.db import session_scope
from core.ledger.quota_report_repo import quota_report
from llmq.serve.dashboard import auth, batch_memo, html, views
from llmq.serve.dashboard.auth import Viewer
from llmq.serve.dashboard.providers_view import gather
from llmq.serve.dashboard.spend import spend_cells
from llmq.serve.state import ServeState, get_state

router = APIRouter(include_in_schema=False)
State = Annotated[ServeState, Depends(get_state)]


class LoginNeeded(Exception):
    """Raised by `viewer` when there is no valid session; answered by a redirect."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _dash(request: Request) -> Any:
    return request.app.state.dashboard


def viewer(request: Request, state: State) -> Viewer:
    token = request.cookies.get(auth.COOKIE)
    found = auth.read_session(state, token, _dash(request).secret)
    if found is None:
        raise LoginNeeded(request.url.path)
    return found


Who = Annotated[Viewer, Depends(viewer)]


def _page(title: str, body: str, who: Viewer, path: str, status: int = 200) -> HTMLResponse:
    label = f"{who.tenant} (admin: all tenants)" if who.is_admin else who.tenant
    doc = html.page(title, body, path=path, who=label, csrf=who.csrf)
    return HTMLResponse(doc, status_code=status)


def _not_found(who: Viewer) -> HTMLResponse:
    return _page("Not found", "<p>No such batch or job.</p>", who, "", 404)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _safe_next(path: str | None) -> str:
    """Only a local path: never another site (`//host`, `http:`) after sign-in."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


# --- sign-in --------------------------------------------------------------------------------


@router.get("/login")
def login_page(next: str = "/") -> HTMLResponse:  # noqa: A002 - the query parameter's name
    return HTMLResponse(html.login_form(next_path=_safe_next(next)))


@router.post("/login")
def login(
    request: Request,
    state: State,
    key: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",  # noqa: A002 - the form field's name
) -> Response:
    who = auth.sign_in(state, key) if key.strip() else None
    if who is None:
        doc = html.login_form("Unknown or revoked key.", _safe_next(next))
        return HTMLResponse(doc, status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        auth.COOKIE,
        auth.make_session(who, _dash(request).secret),
        max_age=auth.SESSION_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(who: Who, csrf: Annotated[str, Form()] = "") -> Response:
    if not auth.csrf_ok(who, csrf):
        return HTMLResponse("bad form token", status_code=403)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.COOKIE)
    return response


# --- batches and jobs -----------------------------------------------------------------------


@router.get("/")
def batches_page(
    request: Request, state: State, who: Who, tenant: str | None = None
) -> HTMLResponse:
    scope = auth.scope_tenant(who, tenant)
    with session_scope(state.sessions) as session:
        rows = batch_memo.batch_list(_dash(request).batches, session, scope, datetime.now(UTC))
    body = views.batches_body(rows, show_tenant=who.is_admin)
    return _page("Batches", body, who, "/")


@router.get("/batches/{batch_id}")
def batch_page(
    request: Request, batch_id: str, state: State, who: Who, notice: str = ""
) -> HTMLResponse:
    bid = _uuid(batch_id)
    with session_scope(state.sessions) as session:
        owner = dashboard_reads_repo.batch_tenant(session, bid) if bid else None
        if bid is None or not auth.may_see(who, owner):
            return _not_found(who)
        memo = _dash(request).batches
        status, models, slowest, costliest = batch_memo.batch_page(
            memo, session, bid, datetime.now(UTC)
        )
    body = views.batch_body(status, models, slowest, costliest, who.csrf, notice[:200])
    return _page(f"Batch {status.name or bid}", body, who, "/")


@router.get("/jobs/{job_id}")
def job_page(job_id: str, state: State, who: Who) -> HTMLResponse:
    jid = _uuid(job_id)
    with session_scope(state.sessions) as session:
        owner = dashboard_reads_repo.job_tenant(session, jid) if jid else None
        if jid is None or not auth.may_see(who, owner):
            return _not_found(who)
        timeline = batch_reads_repo.job_timeline(session, jid)
    assert timeline is not None
    return _page(f"Job {timeline.job['custom_id']}", views.job_body(timeline), who, "/")


def _change(state: ServeState, who: Viewer, batch_id: str, csrf: str, action: str) -> Response:
    """Cancel or resume one batch of the viewer's tenant (or any, for an admin)."""
    if not auth.csrf_ok(who, csrf):
        return HTMLResponse("bad form token", status_code=403)
    bid = _uuid(batch_id)
    now = datetime.now(UTC)
    with session_scope(state.sessions) as session:
        owner = dashboard_reads_repo.batch_tenant(session, bid) if bid else None
        if bid is None or not auth.may_see(who, owner):
            return _not_found(who)
        if action == "cancel":
            api_batches_repo.mark_cancelling_by_ledger_batch(session, bid, now)
            done = batch_control_repo.cancel_batch(session, bid, now)
            notice = (
                f"cancelled {done.cancelled} jobs; {done.running} running finish" if done else ""
            )
            ids: list[uuid.UUID] = []
        else:
            ids = batch_control_repo.resume_batch(session, bid, now) or []
            notice = f"resumed {len(ids)} jobs"
    if ids:
        from producer.submit import publish_or_mark

        publish_or_mark(state.sessions, state.broker_url, bid, ids)
    return RedirectResponse(f"/batches/{bid}?notice={notice.replace(' ', '+')}", status_code=303)


@router.post("/batches/{batch_id}/cancel")
def cancel(batch_id: str, state: State, who: Who, csrf: Annotated[str, Form()] = "") -> Response:
    return _change(state, who, batch_id, csrf, "cancel")


@router.post("/batches/{batch_id}/resume")
def resume(batch_id: str, state: State, who: Who, csrf: Annotated[str, Form()] = "") -> Response:
    return _change(state, who, batch_id, csrf, "resume")


# --- spend and providers --------------------------------------------------------------------


def _spend_filters(who: Viewer, days: int, by: str, tenant: str | None) -> str:
    def opt(value: object, current: object) -> str:
        chosen = " selected" if value == current else ""
        return f'<option value="{html.esc(value)}"{chosen}>{html.esc(value or "all")}</option>'

    tenants = ""
    if who.is_admin:
        tenants = f'<label>tenant <input name="tenant" value="{html.esc(tenant or "")}" ' \
            'placeholder="all" size="14"></label> '  # fmt: skip
    return (
        '<form method="get" action="/spend" id="spend-filters"><p>'
        f'<label>days <select name="days">{"".join(opt(d, days) for d in (7, 30, 90))}'
        f'</select></label> <label>by <select name="by">'
        f"{''.join(opt(b, by) for b in ('provider', 'model'))}</select></label> "
        f'{tenants}<button type="submit">Show</button></p></form>'
    )


@router.get("/spend")
def spend_page(
    request: Request,
    state: State,
    who: Who,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    by: Annotated[str, Query(pattern="^(provider|model)$")] = "provider",
    tenant: str | None = None,
) -> HTMLResponse:
    scope = auth.scope_tenant(who, tenant)
    now = datetime.now(UTC)
    day_list, cells = spend_cells(_dash(request).memo, state.sessions, scope, by, days, now)
    with session_scope(state.sessions) as session:
        quota = [q for q in quota_report(session, scope, now) if q.period != "batch"]
    filters = _spend_filters(who, days, by, scope)
    title = f"Spend: {scope or 'all tenants'}, last {days} days (UTC)"
    return _page(title, views.spend_body(day_list, cells, by, filters, quota), who, "/spend")


@router.get("/providers")
def providers_page(request: Request, state: State, who: Who) -> HTMLResponse:
    rows, warning = gather(state, _dash(request).health(), datetime.now(UTC))
    return _page("Providers", views.providers_body(rows, warning), who, "/providers")
