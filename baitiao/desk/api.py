"""The desk's JSON API under ``/api``: reads, commands (202 with the event id), the checkout door.

A command's body is the contract's payload model itself (shared/events/payloads.py), so
the OpenAPI document at ``/api/openapi.json`` shows the very fields the bus validates.
The staff ids inside a command (``operator_id``, ``requested_by``, ``decided_by``) are
the logged-in user's, whatever the body says: the audit log and the event agree on who.
"""

from __future__ import annotations

import hmac
import time
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from baitiao.desk import reads, worklists
from baitiao.desk.access import COOKIE, AccessDenied, User, authenticate, issue_token, require
from baitiao.desk.context import Desk
from baitiao.desk.outcome_form import read_outcome_form
from baitiao.desk.sending import BusUnavailable, command_record, send_command
from shared.events import payloads as p

CHECKOUT = User("checkout", "operator")  # who the audit log says sent a purchase through the door

router = APIRouter(prefix="/api")


# --- who is asking -----------------------------------------------------------------------------


def desk_of(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


def user_of(request: Request) -> User | None:
    """The logged-in user from the cookie or an ``Authorization: Bearer`` token."""
    from baitiao.desk.access import active_user, read_token

    desk = desk_of(request)
    token = request.cookies.get(COOKIE)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    if not token:
        return None
    user = read_token(token, desk.secret)
    if user is None:
        return None
    current = active_user(desk.engine, user.username)  # a disabled user's token stops working
    return current if current is not None and current.role == user.role else None


DeskDep = Annotated[Desk, Depends(desk_of)]
UserDep = Annotated[User | None, Depends(user_of)]


# --- models ------------------------------------------------------------------------------------


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoggedIn(BaseModel):
    username: str
    role: str
    token: str


class Accepted(BaseModel):
    """A command published: its event id, to read its outcome at ``/api/commands/{event_id}``."""

    event_id: str
    type: str
    business_id: str


class CommandOutcome(BaseModel):
    event_id: str
    type: str
    business_id: str
    aggregate_id: str
    actor: str
    sent_at: str
    reply_type: str | None
    reply: dict[str, Any] | None
    replied_at: str | None
    task: dict[str, Any] | None = None  # for a call outcome: the task as collections holds it now


class WorkRow(BaseModel):
    priority: int
    task_id: str
    account_id: str
    kind: str
    stage: str
    dpd: int
    amount: str
    due_by: str
    promise_due: str | None
    customer: str | None
    phone: str | None


class Worklist(BaseModel):
    collector: str | None
    page: int
    size: int
    total: int
    rows: list[WorkRow]


class Assignment(BaseModel):
    collector: str = Field(min_length=1, max_length=64)
    account_ids: list[str] = Field(min_length=1, max_length=10_000)


class OfferAcceptance(BaseModel):
    """Acceptance of an offer: the customer must have acknowledged its disclosure table."""

    acceptance: p.PlanOfferAccepted
    disclosure_acknowledged: bool


class PurchaseDecision(BaseModel):
    event_id: str
    decision: str  # approved | declined
    reply: dict[str, Any]


# --- login -------------------------------------------------------------------------------------


@router.post("/login", response_model=LoggedIn, tags=["access"])
def login(body: Login, response: Response, desk: DeskDep) -> LoggedIn:
    user = authenticate(desk.engine, body.username, body.password)
    if user is None:
        raise HTTPException(401, "wrong username or password")
    token = issue_token(user, desk.secret, desk.desk.session_hours)
    set_login_cookie(response, token, desk)
    return LoggedIn(username=user.username, role=user.role, token=token)


def set_login_cookie(response: Response, token: str, desk: Desk) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(desk.desk.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=desk.desk.secure_cookie,
    )


@router.post("/logout", status_code=204, tags=["access"])
def logout(response: Response) -> Response:
    response.delete_cookie(COOKIE)
    response.status_code = 204
    return response


@router.get("/health", tags=["operations"])
def health(desk: DeskDep) -> dict[str, str]:
    """Alive, without a login (the container's healthcheck); ``bus``: ``listening`` when the
    reply listener is connected, ``connecting`` while it is not, ``none`` when read-only."""
    bus = "none" if desk.bus is None else ("listening" if desk.bus.listening else "connecting")
    return {"status": "ok", "bus": bus}


@router.get("/me", tags=["access"])
def me(user: UserDep) -> dict[str, str]:
    who = require(user)
    return {"username": who.username, "role": who.role}


# --- reads -------------------------------------------------------------------------------------


def worklist_for(desk: Desk, user: User, collector: str | None, page: int) -> dict[str, Any]:
    """A collector's own worklist (only theirs); a supervisor's view of one collector's, or
    of every open task (``collector`` None)."""
    if user.role == "collector":
        if collector not in (None, user.username):
            raise AccessDenied(403, "a collector sees only their own worklist")
        collector = user.username
    else:
        require(user, "supervisor")
    accounts = worklists.assigned_accounts(desk.engine, collector) if collector else None
    data = reads.worklist_page(
        desk.settings, accounts, unmasked=False, page=page, size=desk.desk.page_size
    )  # a list is always masked: unmasked data is shown one account at a time, audited
    worklists.audit(desk.engine, user, "view:worklist", collector or "*", {"page": page, "rows": len(data["rows"])})
    return {"collector": collector, **data}


@router.get("/worklist", response_model=Worklist, tags=["collections"])
def get_worklist(
    desk: DeskDep, user: UserDep, collector: str | None = None, page: Annotated[int, Query(ge=1)] = 1
) -> dict[str, Any]:
    """Open tasks by priority (stage, DPD, amount owed, promise due), one page."""
    return worklist_for(desk, require(user), collector, page)


@router.post("/assignments", tags=["collections"])
def post_assignment(body: Assignment, desk: DeskDep, user: UserDep) -> dict[str, Any]:
    """Assign (or reassign) accounts to a collector: supervisors."""
    who = require(user, "supervisor")
    count = worklists.assign(desk.engine, body.account_ids, body.collector, who)
    worklists.audit(desk.engine, who, "assign", body.collector, {"accounts": count})
    return {"collector": body.collector, "assigned": count}


def account_for(desk: Desk, user: User, account_id: str) -> dict[str, Any]:
    """The 360° view, if this user may open the account; audited."""
    if not worklists.may_work(desk.engine, user, account_id):
        raise AccessDenied(403, f"{account_id} is not on {user.username}'s worklist")
    try:
        view = reads.account_page(desk.settings, account_id, unmasked=user.sees_personal_data)
    except reads.AccountNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    worklists.audit(
        desk.engine,
        user,
        "view:account",
        account_id,
        {"personal_data": "unmasked" if user.sees_personal_data else "masked"},
    )
    return view


@router.get("/accounts/{account_id}", tags=["accounts"])
def get_account(account_id: str, desk: DeskDep, user: UserDep) -> dict[str, Any]:
    """Status, effective level and measures with their history, limits, bills with DPD and
    charges, ledger, bureau marks and notices, payments, the collection case, the plan."""
    return account_for(desk, require(user), account_id)


@router.get("/cases/{account_id}", tags=["collections"])
def get_case(account_id: str, desk: DeskDep, user: UserDep) -> dict[str, Any]:
    """The collection case: stage, grade, every contact sent or suppressed with its reason,
    tasks, promises."""
    who = require(user)
    if not worklists.may_work(desk.engine, who, account_id):
        raise AccessDenied(403, f"{account_id} is not on {who.username}'s worklist")
    view = reads.case_view(desk.settings, account_id, unmasked=who.sees_personal_data)
    worklists.audit(desk.engine, who, "view:case", account_id)
    return view


@router.get("/accounts/{account_id}/plans", tags=["restructuring"])
def get_plans(account_id: str, desk: DeskDep, user: UserDep) -> dict[str, Any]:
    """The offers last disclosed (as ``plan.offered`` carried them), the plans with their
    schedules, the adjustments."""
    who = require(user)
    if not worklists.may_work(desk.engine, who, account_id):
        raise AccessDenied(403, f"{account_id} is not on {who.username}'s worklist")
    return reads.plans_view(desk.settings, account_id, desk.today())


@router.get("/kpis", tags=["supervision"])
def get_kpis(
    desk: DeskDep,
    user: UserDep,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Collections KPIs for a period (default: the last 30 days), as ``collections kpis``."""
    require(user, "supervisor")
    last = last or desk.today()
    first = first or last - timedelta(days=29)
    if last < first:
        raise HTTPException(422, "to is before from")
    return reads.kpis(desk.settings, first, last)


@router.get("/audit", tags=["supervision"])
def get_audit(
    desk: DeskDep, user: UserDep, actor: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    """Who viewed or sent what, and when, newest first: supervisors."""
    require(user, "supervisor")
    return worklists.audit_entries(desk.engine, actor=actor, limit=limit)


@router.get("/dead-letters", tags=["operations"])
def get_dead_letters(desk: DeskDep, user: UserDep, all: bool = False) -> list[dict[str, Any]]:
    """Every service's dead letters, personal data masked: operators."""
    require(user, "operator")
    return reads.letters(desk.settings, include_retired=all)


@router.post("/dead-letters/{letter_id}/replay", tags=["operations"])
def replay_letter(letter_id: str, desk: DeskDep, user: UserDep) -> dict[str, Any]:
    """Publish a dead letter (``service:N``) to its queue again: operators."""
    who = require(user, "operator")
    return replay(desk, who, letter_id)


def replay(desk: Desk, who: User, letter_id: str) -> dict[str, Any]:
    from baitiao import registry
    from baitiao.commands.databases import service_engine
    from shared.broker import broker_connection
    from shared.bus.dead_letters import LetterRetired, replay_dead_letter
    from shared.settings import SERVICES

    service, _, number = letter_id.partition(":")
    if service not in SERVICES or not number.isdigit():
        raise HTTPException(422, "a letter id is SERVICE:N")
    table = registry.definition(service).bus.dead_letters
    url = desk.settings.resolved_broker_url()
    with broker_connection(url, desk.settings, connect_timeout=3) as connection:
        try:
            letter = replay_dead_letter(
                service_engine(desk.settings, service),  # type: ignore[arg-type]
                table,
                int(number),
                connection,
                desk.now(),
            )
        except LetterRetired as exc:
            raise HTTPException(409, str(exc)) from None
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
    worklists.audit(desk.engine, who, "replay:dead_letter", letter_id, {"queue": letter.queue})
    return {"id": letter_id, "replayed_to": letter.queue}


@router.get("/jobs", tags=["operations"])
def get_jobs(desk: DeskDep, user: UserDep) -> list[dict[str, Any]]:
    """Every service's jobs and their last runs: operators."""
    require(user, "operator", "supervisor")
    return reads.jobs(desk.settings)


@router.get("/commands/{event_id}", response_model=CommandOutcome, tags=["commands"])
def get_command(event_id: str, desk: DeskDep, user: UserDep) -> dict[str, Any]:
    """A command the desk sent and its answer (null until it arrives)."""
    who = require(user)
    record = command_record(desk, event_id)
    if record is None or (who.role == "collector" and record["actor"] != who.username):
        raise HTTPException(404, f"no command {event_id} of yours")
    if record["type"] == "collection.outcome.recorded":
        record["task"] = reads.task_status(desk.settings, record["business_id"])
    return record


# --- commands ----------------------------------------------------------------------------------


def _sent(desk: Desk, user: User, event_type: str, payload: p.Payload) -> JSONResponse:
    try:
        event_id = send_command(desk, user, event_type, payload)
    except BusUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    from baitiao.desk.commands import business_id

    body = Accepted(event_id=event_id, type=event_type, business_id=business_id(event_type, payload))
    return JSONResponse(body.model_dump(), status_code=202)


def check_outcome(desk: Desk, body: p.CollectionOutcomeRecorded) -> None:
    """The outcome form's rules for the JSON door too: promise window, not above owed."""
    try:
        owed = Decimal(reads.account_page(desk.settings, body.account_id, unmasked=False)["owed"])
    except reads.AccountNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    _form, errors = read_outcome_form(
        body.outcome,
        body.promised_date.isoformat() if body.promised_date else "",
        str(body.promised_amount) if body.promised_amount is not None else "",
        today=desk.today(),
        owed=owed,
        rules=desk.rules.collections.compliance,
    )
    if errors:
        raise HTTPException(422, [{"loc": ["body", k], "msg": v} for k, v in errors.items()])


@router.post("/commands/collection-outcome", status_code=202, response_model=Accepted, tags=["commands"])
def post_outcome(body: p.CollectionOutcomeRecorded, desk: DeskDep, user: UserDep) -> JSONResponse:
    """Record a call's outcome or a promise to pay (``collection.outcome.recorded``)."""
    who = require(user, "collector", "supervisor")
    if not worklists.may_work(desk.engine, who, body.account_id):
        raise AccessDenied(403, f"{body.account_id} is not on {who.username}'s worklist")
    check_outcome(desk, body)
    return _sent(desk, who, "collection.outcome.recorded", body)


@router.post("/commands/offers-request", status_code=202, response_model=Accepted, tags=["commands"])
def post_offers_request(body: p.PlanOffersRequested, desk: DeskDep, user: UserDep) -> JSONResponse:
    """Ask restructuring for plan offers (``plan.offers.requested``)."""
    who = require(user, "collector", "supervisor")
    if not worklists.may_work(desk.engine, who, body.account_id):
        raise AccessDenied(403, f"{body.account_id} is not on {who.username}'s worklist")
    return _sent(desk, who, "plan.offers.requested", body)


@router.post("/commands/offer-acceptance", status_code=202, response_model=Accepted, tags=["commands"])
def post_offer_acceptance(body: OfferAcceptance, desk: DeskDep, user: UserDep) -> JSONResponse:
    """Accept an offer (``plan.offer.accepted``) once its disclosure was acknowledged."""
    who = require(user, "collector", "supervisor")
    if not body.disclosure_acknowledged:
        raise HTTPException(422, "the customer must acknowledge the disclosure table first")
    if not worklists.may_work(desk.engine, who, body.acceptance.account_id):
        raise AccessDenied(403, f"{body.acceptance.account_id} is not on {who.username}'s worklist")
    return _sent(desk, who, "plan.offer.accepted", body.acceptance)


@router.post("/commands/adjustment", status_code=202, response_model=Accepted, tags=["commands"])
def post_adjustment(body: p.PlanAdjustmentRequested, desk: DeskDep, user: UserDep) -> JSONResponse:
    """Ask to extend a plan or lower its payment (``plan.adjustment.requested``)."""
    who = require(user, "collector", "supervisor")
    return _sent(desk, who, "plan.adjustment.requested", body)


@router.post("/commands/pause", status_code=202, response_model=Accepted, tags=["commands"])
def post_pause(body: p.DelinquencyPauseRequested, desk: DeskDep, user: UserDep) -> JSONResponse:
    """Pause an account's delinquency (``delinquency.pause.requested``): operators."""
    who = require(user, "operator")
    return _sent(desk, who, "delinquency.pause.requested", body.model_copy(update={"operator_id": who.username}))


@router.post("/commands/resume", status_code=202, response_model=Accepted, tags=["commands"])
def post_resume(body: p.DelinquencyResumeRequested, desk: DeskDep, user: UserDep) -> JSONResponse:
    """Resume a paused delinquency (``delinquency.resume.requested``): operators."""
    who = require(user, "operator")
    return _sent(desk, who, "delinquency.resume.requested", body.model_copy(update={"operator_id": who.username}))


@router.post("/commands/waiver", status_code=202, response_model=Accepted, tags=["commands"])
def post_waiver(body: p.WaiverRequested, desk: DeskDep, user: UserDep) -> JSONResponse:
    """Request a waiver of penalty interest or a late fee (``waiver.requested``), the maker."""
    who = require(user, "operator", "supervisor")
    return _sent(desk, who, "waiver.requested", body.model_copy(update={"requested_by": who.username}))


@router.post("/commands/waiver-decision", status_code=202, response_model=Accepted, tags=["commands"])
def post_waiver_decision(body: p.WaiverDecisionRecorded, desk: DeskDep, user: UserDep) -> JSONResponse:
    """Approve or decline a pending waiver (``waiver.decision.recorded``): supervisors, the checker."""
    who = require(user, "supervisor")
    return _sent(desk, who, "waiver.decision.recorded", body.model_copy(update={"decided_by": who.username}))


# --- the checkout door -------------------------------------------------------------------------


@router.post(
    "/purchases",
    response_model=PurchaseDecision,
    responses={202: {"model": Accepted, "description": "no decision within the wait: read it later"}},
    tags=["checkout"],
)
async def post_purchase(body: p.PurchaseRequested, request: Request) -> Any:
    """Publish ``purchase.requested``, wait (bounded) for its decision on the bus and return
    it; no decision in time: 202 with the event id (``/api/purchases/{event_id}``).

    Async: the command's row and its publish take a thread of the pool for a few
    milliseconds, the wait for the decision none (:meth:`DeskBus.wait`). The response's
    ``Server-Timing`` splits the door's time: ``send`` (the row and the publish) and
    ``decision`` (the wait for the answer)."""
    desk = desk_of(request)
    _require_checkout(desk, request)
    if desk.bus is None:
        raise HTTPException(503, "this desk has no broker")
    started = time.perf_counter()
    event_id = await run_in_threadpool(send_command, desk, CHECKOUT, "purchase.requested", body, expect_reply=True)
    sent = time.perf_counter()
    reply = await desk.bus.wait(event_id, desk.desk.checkout_wait_s)
    timing = {
        "server-timing": f"send;dur={(sent - started) * 1000:.3f}, decision;dur={(time.perf_counter() - sent) * 1000:.3f}"
    }
    if reply is None:
        accepted = Accepted(event_id=event_id, type="purchase.requested", business_id=body.purchase_id)
        return JSONResponse(accepted.model_dump(), status_code=202, headers=timing)
    decision = "approved" if reply["type"] == "purchase.approved" else "declined"
    answer = PurchaseDecision(event_id=event_id, decision=decision, reply=reply["payload"])
    return JSONResponse(answer.model_dump(mode="json"), headers=timing)


def _require_checkout(desk: Desk, request: Request) -> None:
    """The checkout's bearer token (the door's one caller), compared in constant time."""
    token = desk.desk.checkout_token
    if not token or not hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {token}"):
        raise HTTPException(401, "the checkout's bearer token is required")


@router.get("/purchases/{event_id}", response_model=CommandOutcome, tags=["checkout"])
def get_purchase(event_id: str, request: Request, desk: DeskDep) -> dict[str, Any]:
    _require_checkout(desk, request)
    record = command_record(desk, event_id)
    if record is None or record["type"] != "purchase.requested":
        raise HTTPException(404, f"no purchase {event_id}")
    return record
