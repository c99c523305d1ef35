"""The console's pages and API, one short function per route.

``/api/...`` answers JSON for the same data the pages show, under the same access rules: a
patient the user may not see is 404 on both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from homevitals.console import pages
from homevitals.console.accounts import Account, Role, Session
from homevitals.console.app import PAGE_SIZE, ConsoleApp
from homevitals.console.errors import ConsoleError
from homevitals.console.ports import InboxAlert
from homevitals.vocab.config import PatientConfig

__all__ = ["ROUTES", "Reply", "Request"]

_HTML = "text/html; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    ctype: str = _HTML
    location: str = ""
    session: Session | None = None  # a new session whose cookie must be set

    @staticmethod
    def html(page: str, status: int = 200, session: Session | None = None) -> Reply:
        return Reply(status, page.encode(), _HTML, session=session)

    @staticmethod
    def text(status: int, message: str) -> Reply:
        return Reply(status, message.encode(), "text/plain; charset=utf-8")

    @staticmethod
    def json(status: int, data: object) -> Reply:
        return Reply(status, json.dumps(data, default=str).encode(), "application/json")

    @staticmethod
    def redirect(location: str, session: Session | None = None) -> Reply:
        return Reply(303, b"", "text/plain", location, session)


@dataclass(frozen=True, slots=True)
class Request:
    app: ConsoleApp
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, str]
    session: Session
    account: Account | None
    address: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def user(self) -> Account:
        assert self.account is not None  # routes that need a user are only called with one
        return self.account

    def arg(self, name: str) -> str:
        return self.query.get(name, [""])[0]

    def page(self, title: str, body: str, *, poll: float = 0, status: int = 200) -> Reply:
        return Reply.html(pages.layout(title, body, self.account, self.session.csrf, poll=poll),
                          status)


def _not_found(req: Request) -> Reply:
    if req.path.startswith("/api/"):
        return Reply.json(404, {"error": "not found"})
    return req.page("Not found", "<p>No such page or patient.</p>", status=404)


# --- sign in ---------------------------------------------------------------------------------
def login_form(req: Request) -> Reply:
    if req.account is not None:
        return Reply.redirect("/inbox")
    return Reply.html(pages.login_page(req.session.csrf, ""))


def login(req: Request) -> Reply:
    app = req.app
    new = app.accounts.sign_in(req.form.get("username", ""), req.form.get("password", ""),
                               req.session, req.address)
    if new is None:
        return Reply.html(pages.login_page(req.session.csrf, "Wrong user name or password, or"
                                           " the account is locked for a while."), 401)
    return Reply.redirect("/inbox", new)


def logout(req: Request) -> Reply:
    req.app.accounts.sign_out(req.session)
    return Reply.redirect("/login", req.app.accounts.anonymous())


def home(req: Request) -> Reply:
    return Reply.redirect("/inbox" if req.account else "/login")


# --- inbox -----------------------------------------------------------------------------------
def _names(app: ConsoleApp, user: Account) -> dict[str, str]:
    return {p.id: p.name for _, p in app.visible(user)}


def inbox(req: Request) -> Reply:
    body = f'<div id="inbox" data-src="/inbox/list">{_inbox_list(req)}</div>'
    flash = {"acked": "Acknowledged: the escalation has stopped.",
             "closed": "That alert was already closed."}.get(req.arg("done"), "")
    return req.page("Alert inbox", pages.flash(flash) + body, poll=req.app.ccfg.poll_seconds)


def _inbox_list(req: Request) -> str:
    app = req.app
    alerts = app.inbox(req.user)
    return pages.inbox_list(alerts, _names(app, req.user), req.session.csrf, app.clock.now(),
                            app.current(alerts))


def inbox_fragment(req: Request) -> Reply:
    return Reply.html(_inbox_list(req))


def _alert_json(a: InboxAlert) -> dict[str, Any]:
    return {"alert_id": a.alert_id, "patient": a.patient, "rule": a.rule,
            "severity": a.severity, "state": a.state, "reason": a.reason,
            "opened_at": a.opened_at.isoformat(), "value": a.value, "unit": a.unit,
            "step": a.step, "told": list(a.told),
            "next_step_at": a.next_step_at.isoformat() if a.next_step_at else None}


def inbox_api(req: Request) -> Reply:
    return Reply.json(200, {"alerts": [_alert_json(a) for a in req.app.inbox(req.user)]})


def acknowledge(req: Request) -> Reply:
    done = req.app.acknowledge(req.user, req.params["alert"], req.form.get("note", ""),
                               req.address)
    if done is None:
        return _not_found(req)
    return Reply.redirect("/inbox?done=" + ("acked" if done.startswith("Ack") else "closed"))


# --- patients --------------------------------------------------------------------------------
def _page_no(req: Request) -> int:
    n = req.arg("page")
    return int(n) if n.isdigit() and len(n) < 6 else 0


def patients(req: Request) -> Reply:
    q, n = req.arg("q"), _page_no(req)
    rows, total = req.app.patient_rows(req.user, q, n)
    return req.page("Patients", pages.patients_page(rows, q, req.app.clock.now())
                    + pages.pager(q, n, total, PAGE_SIZE))


def patients_api(req: Request) -> Reply:
    rows, total = req.app.patient_rows(req.user, req.arg("q"), _page_no(req))
    return Reply.json(200, {"total": total, "page_size": PAGE_SIZE, "patients": [
        {"id": r.patient.id, "name": r.patient.name, "home": r.home.id,
         "open_alerts": r.open_alerts, "risk_tier": r.risk.tier if r.risk else None,
         "risk_reasons": list(r.risk.reasons) if r.risk else [],
         "readings": [{"measurement": x.measurement, "value": x.text, "time": x.time.isoformat()}
                      for x in (r.status.readings if r.status else ())]}
        for r in rows]})


def _patient(req: Request) -> PatientConfig | None:
    found = req.app.patient(req.user, req.params["patient"])
    return None if found is None else found[1]


def patient_page(req: Request) -> Reply:
    p = _patient(req)
    if p is None:
        return _not_found(req)
    app = req.app
    app.accounts.audit(req.user.username, "patient record viewed", p.id, address=req.address)
    app.tasks(req.user)  # the patient's newest alerts have their follow-ups too
    body = pages.record_page(p.id, p.name, app.records.record(p.id),
                             app.alerts.patient_alerts(p.id), app.followups.of_patient(p.id),
                             app.accounts.notes(p.id), req.session.csrf, app.clock.now(),
                             app.records.risk([p.id]).get(p.id))
    return req.page(p.name, body)


def patient_api(req: Request) -> Reply:
    p = _patient(req)
    if p is None:
        return _not_found(req)
    app = req.app
    risk = app.records.risk([p.id]).get(p.id)
    return Reply.json(200, {
        "id": p.id, "name": p.name, "risk_tier": risk.tier if risk else None,
        "risk_reasons": list(risk.reasons) if risk else [],
        "alerts": [_alert_json(a) for a in app.alerts.patient_alerts(p.id)],
        "notes": app.accounts.notes(p.id)})


def figure(req: Request) -> Reply:
    p = _patient(req)
    png = None if p is None else req.app.records.figure(p.id, req.params["key"])
    if png is None:
        return _not_found(req)
    return Reply(200, png, "image/png")


def add_note(req: Request) -> Reply:
    pid = req.params["patient"]
    if not req.app.add_note(req.user, pid, req.form.get("body", "")):
        return _not_found(req)
    return Reply.redirect(f"/patients/{pid}")


# --- follow-ups ------------------------------------------------------------------------------
def followups(req: Request) -> Reply:
    app = req.app
    flash = {"done": "Follow-up recorded.",
             "empty": "Write what happened before marking it done."}.get(req.arg("done"), "")
    body = pages.followups_page(app.tasks(req.user), _names(app, req.user), req.session.csrf,
                                app.clock.now())
    return req.page("Follow-ups", pages.flash(flash) + body)


def followups_api(req: Request) -> Reply:
    return Reply.json(200, {"followups": [
        {"alert_id": f.alert_id, "patient": f.patient, "severity": f.severity,
         "due_at": f.due_at.isoformat(), "assignee": f.assignee}
        for f in req.app.tasks(req.user)]})


def complete(req: Request) -> Reply:
    done = req.app.complete(req.user, req.params["alert"], req.form.get("outcome", ""),
                            req.address)
    if done is None:
        return _not_found(req)
    return Reply.redirect("/followups?done=" + ("done" if done else "empty"))


# --- admin -----------------------------------------------------------------------------------
def _admin_only(fn: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
    def check(req: Request) -> Reply:
        return fn(req) if req.user.role == Role.ADMIN else _not_found(req)
    return check


def _admin_view(req: Request, message: str = "") -> Reply:
    a = req.app.accounts
    return req.page("Accounts", pages.flash(message) + pages.admin_page(
        a.all(), a.audit_rows(), req.session.csrf))


@_admin_only
def create_account(req: Request) -> Reply:
    f = req.form
    try:
        req.app.accounts.add(f.get("username", "").strip(), f.get("display_name", "").strip(),
                             Role(f.get("role", "")), f.get("password", ""),
                             f.get("phone", "").strip() or None, req.user.username)
    except (ConsoleError, ValueError) as exc:
        return _admin_view(req, f"Not created: {exc}")
    return _admin_view(req, "Account created.")


@_admin_only
def reset_password(req: Request) -> Reply:
    try:
        req.app.accounts.reset_password(req.params["user"], req.form.get("password", ""),
                                        req.user.username)
    except ConsoleError as exc:
        return _admin_view(req, f"Not changed: {exc}")
    return _admin_view(req, "Password reset; that user's sessions have ended.")


_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
ROUTES: list[tuple[str, re.Pattern[str], bool, Callable[[Request], Reply]]] = [
    (m, re.compile(p), need, fn) for m, p, need, fn in [
        ("GET", "/", False, home),
        ("GET", "/login", False, login_form),
        ("POST", "/login", False, login),
        ("POST", "/logout", True, logout),
        ("GET", "/inbox", True, inbox),
        ("GET", "/inbox/list", True, inbox_fragment),
        ("GET", "/api/inbox", True, inbox_api),
        ("POST", f"/alerts/(?P<alert>{_ID})/ack", True, acknowledge),
        ("GET", "/followups", True, followups),
        ("GET", "/api/followups", True, followups_api),
        ("POST", f"/followups/(?P<alert>{_ID})/done", True, complete),
        ("GET", "/patients", True, patients),
        ("GET", "/api/patients", True, patients_api),
        ("GET", f"/patients/(?P<patient>{_ID})", True, patient_page),
        ("GET", f"/api/patients/(?P<patient>{_ID})", True, patient_api),
        ("GET", f"/patients/(?P<patient>{_ID})/figures/(?P<key>[a-z]+)\\.png", True, figure),
        ("POST", f"/patients/(?P<patient>{_ID})/notes", True, add_note),
        ("GET", "/admin", True, _admin_only(_admin_view)),
        ("POST", "/admin/accounts", True, create_account),
        ("POST", f"/admin/accounts/(?P<user>{_ID})/password", True, reset_password),
    ]
]
