"""The desk's server-rendered pages (Jinja2 templates, plain CSS, no script needed).

Each page calls the same functions as the JSON API (access checks, reads, audit,
commands), so a page shows what ``/api`` returns and is refused when ``/api`` refuses.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from baitiao.desk import reads, worklists
from baitiao.desk.access import AccessDenied, User, authenticate, issue_token, require
from baitiao.desk.api import account_for, desk_of, replay, set_login_cookie, user_of, worklist_for
from baitiao.desk.charts import kpi_charts
from baitiao.desk.outcome_form import OUTCOMES, read_outcome_form
from baitiao.desk.sending import send_command
from services.collections.domain import latest_promise_date
from shared.events import payloads as p

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def pct(rate: str | None) -> str:
    return "n/a" if rate is None else f"{(Decimal(rate) * 100).quantize(Decimal('0.01'))}%"


templates.env.filters["pct"] = pct


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    user = user_of(request)
    return templates.TemplateResponse(request, name, {"user": user, **context}, status_code=status)


def _user(request: Request, *roles: str) -> User:
    return require(user_of(request), *roles)  # type: ignore[arg-type]


@router.get("/")
def home(request: Request) -> Response:
    user = user_of(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse({"operator": "/operator"}.get(user.role, "/worklist"), status_code=303)


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", {"error": None})


@router.post("/login")
def login_form(
    request: Request, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = ""
) -> Response:
    desk = desk_of(request)
    user = authenticate(desk.engine, username, password) if username and password else None
    if user is None:
        return render(request, "login.html", {"error": "用户名或密码错误 / wrong username or password"}, status=401)
    response = RedirectResponse("/", status_code=303)
    set_login_cookie(response, issue_token(user, desk.secret, desk.desk.session_hours), desk)
    return response


@router.post("/logout")
def logout_form() -> Response:
    from baitiao.desk.access import COOKIE

    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/worklist")
def worklist_page(request: Request, collector: str | None = None, page: int = 1) -> HTMLResponse:
    user = _user(request)
    data = worklist_for(desk_of(request), user, collector, max(1, page))
    return render(request, "worklist.html", {"data": data, "today": desk_of(request).today()})


@router.get("/accounts/{account_id}")
def account_page(request: Request, account_id: str, sent: str | None = None) -> HTMLResponse:
    user = _user(request)
    view = account_for(desk_of(request), user, account_id)
    return render(request, "account.html", _account_context(request, view, sent=sent))


def _account_context(
    request: Request,
    view: dict[str, Any],
    *,
    sent: str | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> dict[str, Any]:
    desk = desk_of(request)
    today = desk.today()
    open_calls = [t for t in view["collections"]["tasks"] if t["status"] == "open"]
    return {
        "view": view,
        "sent": sent,
        "errors": errors or {},
        "form": form or {},
        "outcomes": OUTCOMES,
        "open_calls": open_calls,
        "today": today,
        "latest_promise": latest_promise_date(today, desk.rules.collections.compliance),
    }


@router.post("/accounts/{account_id}/outcome")
def outcome_form(
    request: Request,
    account_id: str,
    task_id: Annotated[str, Form()] = "",
    outcome: Annotated[str, Form()] = "",
    promised_date: Annotated[str, Form()] = "",
    promised_amount: Annotated[str, Form()] = "",
) -> Response:
    user = _user(request, "collector", "supervisor")
    desk = desk_of(request)
    view = account_for(desk, user, account_id)
    form, errors = read_outcome_form(
        outcome,
        promised_date,
        promised_amount,
        today=desk.today(),
        owed=Decimal(view["owed"]),
        rules=desk.rules.collections.compliance,
    )
    task_ids = {t["task_id"] for t in view["collections"]["tasks"] if t["status"] == "open"}
    if task_id not in task_ids:
        errors["task_id"] = "choose one of the account's open tasks"
    if form is None or errors:
        values = {
            "task_id": task_id,
            "outcome": outcome,
            "promised_date": promised_date,
            "promised_amount": promised_amount,
        }
        return render(request, "account.html", _account_context(request, view, errors=errors, form=values), status=422)
    payload = p.CollectionOutcomeRecorded(
        task_id=task_id,
        account_id=account_id,
        outcome=form.outcome,  # type: ignore[arg-type]
        promised_date=form.promised_date,
        promised_amount=form.promised_amount,
    )
    event_id = send_command(desk, user, "collection.outcome.recorded", payload)
    return RedirectResponse(f"/accounts/{account_id}?sent={event_id}", status_code=303)


@router.get("/accounts/{account_id}/offers")
def offers_page(request: Request, account_id: str, sent: str | None = None) -> HTMLResponse:
    user = _user(request)
    desk = desk_of(request)
    if not worklists.may_work(desk.engine, user, account_id):
        raise AccessDenied(403, f"{account_id} is not on {user.username}'s worklist")
    plans = reads.plans_view(desk.settings, account_id, desk.today())
    return render(request, "offers.html", {"account_id": account_id, "plans": plans, "sent": sent})


@router.post("/accounts/{account_id}/offers")
def request_offers(request: Request, account_id: str) -> Response:
    import uuid

    user = _user(request, "collector", "supervisor")
    desk = desk_of(request)
    if not worklists.may_work(desk.engine, user, account_id):
        raise AccessDenied(403, f"{account_id} is not on {user.username}'s worklist")
    payload = p.PlanOffersRequested(request_id=f"desk-{uuid.uuid4().hex[:16]}", account_id=account_id)
    event_id = send_command(desk, user, "plan.offers.requested", payload)
    return RedirectResponse(f"/accounts/{account_id}/offers?sent={event_id}", status_code=303)


@router.post("/accounts/{account_id}/offers/{offer_id}/accept")
def accept_offer(
    request: Request, account_id: str, offer_id: str, acknowledged: Annotated[str, Form()] = ""
) -> Response:
    user = _user(request, "collector", "supervisor")
    desk = desk_of(request)
    if not worklists.may_work(desk.engine, user, account_id):
        raise AccessDenied(403, f"{account_id} is not on {user.username}'s worklist")
    if acknowledged != "yes":
        raise HTTPException(422, "the customer must acknowledge the disclosure table first")
    payload = p.PlanOfferAccepted(offer_id=offer_id, account_id=account_id, accepted_at=desk.now())
    event_id = send_command(desk, user, "plan.offer.accepted", payload)
    return RedirectResponse(f"/accounts/{account_id}/offers?sent={event_id}", status_code=303)


@router.get("/kpis")
def kpis_page(request: Request, days: int = 30) -> HTMLResponse:
    _user(request, "supervisor")
    desk = desk_of(request)
    last = desk.today()
    first = last - timedelta(days=max(1, min(days, 366)) - 1)
    report = reads.kpis(desk.settings, first, last)
    return render(request, "kpis.html", {"report": report, "charts": kpi_charts(report)})


@router.get("/audit")
def audit_page(request: Request, actor: str | None = None) -> HTMLResponse:
    _user(request, "supervisor")
    return render(request, "audit.html", {"entries": worklists.audit_entries(desk_of(request).engine, actor=actor)})


@router.get("/operator")
def operator_page(request: Request, replayed: str | None = None) -> HTMLResponse:
    _user(request, "operator")
    desk = desk_of(request)
    return render(
        request,
        "operator.html",
        {"letters": reads.letters(desk.settings), "jobs": reads.jobs(desk.settings), "replayed": replayed},
    )


@router.post("/operator/letters/{letter_id}/replay")
def replay_form(request: Request, letter_id: str) -> Response:
    user = _user(request, "operator")
    replay(desk_of(request), user, letter_id)
    return RedirectResponse(f"/operator?replayed={letter_id}", status_code=303)
