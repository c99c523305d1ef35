"""The console's HTML, built from escaped pieces only.

Every value that came from outside (a patient's name, a note, a rule's reason, a user name) goes
through ``e`` before it reaches a page, so ``<script>`` in a name shows as text. The pages load
only ``/static/app.css`` and ``/static/app.js`` from the console itself; the Content-Security-
Policy (``web.py``) forbids anything else.
"""

from __future__ import annotations

import html
from datetime import datetime
from urllib.parse import urlencode

from homevitals.console.accounts import Account, Role
from homevitals.console.app import PatientRow
from homevitals.console.followups import FollowUp
from homevitals.console.ports import InboxAlert, LastReading, Record, RiskView

__all__ = ["e", "inbox_list", "layout", "login_page", "ago"]


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def ago(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "never"
    s = max(0, int((now - t).total_seconds()))
    if s < 60:
        return f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 48 * 3600:
        return f"{s // 3600} h {s % 3600 // 60} min ago"
    return f"{s // 86400} days ago"


def layout(title: str, body: str, user: Account | None, csrf: str, *, poll: float = 0) -> str:
    nav = ""
    if user is not None:
        admin = '<a href="/admin">Accounts</a>' if user.role == Role.ADMIN else ""
        nav = (f'<nav><a href="/inbox">Inbox</a><a href="/followups">Follow-ups</a>'
               f'<a href="/patients">Patients</a>{admin}'
               f'<span class="who">{e(user.display_name)} ({e(user.role)})</span>'
               f'<form method="post" action="/logout" class="inline">{_csrf(csrf)}'
               '<button type="submit">Sign out</button></form></nav>')
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf" content="{e(csrf)}"><meta name="poll" content="{poll}">'
        f'<title>{e(title)} · homevitals</title><link rel="stylesheet" href="/static/app.css">'
        '<script src="/static/app.js" defer></script></head>'
        f'<body><header><strong>homevitals</strong> care team{nav}</header>'
        f'<main><h1>{e(title)}</h1>{body}</main></body></html>'
    )


def _csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(token)}">'


def flash(message: str) -> str:
    return f'<p class="flash" role="status">{e(message)}</p>' if message else ""


def login_page(csrf: str, error: str) -> str:
    err = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    body = (f'{err}<form method="post" action="/login" class="card login">{_csrf(csrf)}'
            '<label>User name <input name="username" autocomplete="username" required></label>'
            '<label>Password <input name="password" type="password"'
            ' autocomplete="current-password" required></label>'
            '<button type="submit">Sign in</button></form>')
    return layout("Sign in", body, None, csrf)


def _value(a: InboxAlert) -> str:
    if a.value is None:
        return ""
    return f"{a.value:g} {a.unit}".strip()


def _now(a: InboxAlert, last: LastReading | None, now: datetime) -> str:
    """The patient's newest reading of the alert's measurement, and the trend since the alert:
    the rule's own rate when it gave one (a CGM trend), else from the alert's value to now."""
    if last is None or (a.observed_at is not None and last.time < a.observed_at):
        last = None if a.value is None or a.observed_at is None else \
            LastReading(a.measurement, _value(a), a.observed_at)
    if last is None:
        return '<span class="now">no reading</span>'
    rate = a.trend
    if rate is None and a.value is not None and a.observed_at and last.time > a.observed_at:
        current = _number(last.text)
        if current is not None:
            rate = (current - a.value) / ((last.time - a.observed_at).total_seconds() / 60)
    arrow = ""
    if rate is not None:
        word = "rising" if rate > 0.005 else "falling" if rate < -0.005 else "steady"
        sign = {"rising": "\u2197", "falling": "\u2198", "steady": "\u2192"}[word]
        arrow = (f' <span class="trend" data-trend="{word}">{sign} {word}'
                 f' ({rate:+.2f} {e(a.unit)}/min)</span>')
    return (f'<span class="now">now <b>{e(last.text)}</b> ({e(ago(last.time, now))})</span>'
            + arrow)


def _number(text: str) -> float | None:
    try:
        return float(text.split()[0].split("/")[0])
    except (ValueError, IndexError):
        return None


def inbox_list(alerts: list[InboxAlert], names: dict[str, str], csrf: str,
               now: datetime, current: dict[str, LastReading] | None = None) -> str:
    if not alerts:
        return '<p class="empty" id="inbox-empty">No open alerts.</p>'
    items = []
    for a in alerts:
        nxt = ""
        if a.next_step_at and a.next_step_at > now:
            nxt = f", next step at {a.next_step_at.strftime('%H:%M')} UTC"
        told = ", ".join(a.told) or "nobody yet"
        items.append(
            f'<li class="alert sev-{e(a.severity)}" data-alert="{e(a.alert_id)}">'
            f'<div class="head"><span class="sev">{e(a.severity)}</span>'
            f'<a href="/patients/{e(a.patient)}">{e(names.get(a.patient, a.patient))}</a>'
            f'<span class="age">opened {e(ago(a.opened_at, now))}</span></div>'
            f'<div class="reason">{e(a.reason)}</div>'
            f'<div class="facts"><span class="value">{e(_value(a))}</span> '
            f'{_now(a, (current or {}).get(a.alert_id), now)} '
            f'<span>escalation step {a.step}{e(nxt)}</span> '
            f'<span class="told">told: {e(told)}</span></div>'
            f'<form method="post" action="/alerts/{e(a.alert_id)}/ack" class="ack">{_csrf(csrf)}'
            '<input name="note" placeholder="note (optional)" maxlength="2000">'
            '<button type="submit">Acknowledge</button></form></li>')
    return f'<ul class="inbox">{"".join(items)}</ul>'


def patients_page(rows: list[PatientRow], query: str, now: datetime) -> str:
    search = ('<form method="get" action="/patients" class="search">'
              f'<input name="q" value="{e(query)}" placeholder="name, id or number"'
              ' type="search"><button type="submit">Search</button></form>')
    if not rows:
        return search + '<p class="empty">No patients.</p>'
    items = []
    for r in rows:
        readings = "".join(
            f'<li>{e(x.measurement)}: <b>{e(x.text)}</b> <span class="age">'
            f'{e(ago(x.time, now))}</span></li>' for x in (r.status.readings if r.status else ()))
        devices = "".join(
            f'<li class="warn">{e(d.device)}: {"silent" if d.silent else ""}'
            f'{" " if d.silent and d.low_battery else ""}'
            f'{f"battery {d.battery:.0f} %" if d.low_battery else ""}</li>'
            for d in (r.status.devices if r.status else ()) if d.silent or d.low_battery)
        alerts = (f'<span class="badge">{r.open_alerts} open alert'
                  f'{"s" if r.open_alerts != 1 else ""}</span>' if r.open_alerts else "")
        if r.overdue:
            alerts += f' <span class="badge">{r.overdue} overdue follow-up</span>'
        if r.risk is not None:
            why = "; ".join(r.risk.reasons)
            alerts = (f'<span class="tier tier-{e(r.risk.tier)}" title="{e(why)}">'
                      f'{e(r.risk.tier)} risk</span> ' + alerts)
        items.append(
            f'<li class="card patient"><div class="head"><a href="/patients/{e(r.patient.id)}">'
            f'{e(r.patient.name)}</a> {alerts}<span class="muted">{e(r.patient.number or "")}'
            f' {e(r.home.id)}</span></div><ul class="readings">{readings or "<li>no readings"}'
            f'</ul><ul class="devices">{devices}</ul></li>')
    return search + f'<ul class="patients">{"".join(items)}</ul>'


def _due(f: FollowUp, now: datetime) -> str:
    if f.done_at:
        return f"done {f.done_at[:16]} by {f.done_by}: {f.outcome}"
    when = f.due_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"OVERDUE since {when}" if f.overdue(now) else f"due by {when}"


def followups_page(tasks: list[FollowUp], names: dict[str, str], csrf: str,
                   now: datetime) -> str:
    if not tasks:
        return '<p class="empty">No follow-ups due.</p>'
    items = "".join(
        f'<li class="card task{" overdue" if f.overdue(now) else ""}" data-task="{e(f.alert_id)}">'
        f'<div class="head"><span class="sev sev-{e(f.severity)}">{e(f.severity)}</span>'
        f'<a href="/patients/{e(f.patient)}">{e(names.get(f.patient, f.patient))}</a>'
        f'<span class="due">{e(_due(f, now))}</span></div>'
        f'<div>Call or home visit after: {e(f.reason)}</div>'
        f'<div class="muted">assigned to {e(f.assignee)}</div>'
        f'<form method="post" action="/followups/{e(f.alert_id)}/done" class="ack">'
        f'{_csrf(csrf)}<input name="outcome" placeholder="outcome (required)" maxlength="2000"'
        ' required><button type="submit">Done</button></form></li>' for f in tasks)
    return f'<ul class="tasks">{items}</ul>'


def pager(query: str, page: int, total: int, size: int) -> str:
    if total <= size:
        return ""
    last = (total - 1) // size

    def link(n: int, text: str) -> str:
        return f'<a href="/patients?{e(urlencode({"q": query, "page": n}))}">{e(text)}</a>'

    prev = link(page - 1, "< previous") if page > 0 else ""
    nxt = link(page + 1, "next >") if page < last else ""
    return (f'<p class="pager">{prev} <span>{page * size + 1}-{min(total, (page + 1) * size)}'
            f' of {total}</span> {nxt}</p>')


def risk_section(risk: RiskView) -> str:
    reasons = "".join(f"<li>{e(x)}</li>" for x in risk.reasons) or \
        "<li>No risk rule holds over the period.</li>"
    return (f'<section class="card risk"><h2>Risk tier: <span class="tier tier-{e(risk.tier)}">'
            f'{e(risk.tier)}</span></h2><ul class="reasons">{reasons}</ul></section>')


def record_page(patient_id: str, name: str, record: Record, alerts: list[InboxAlert],
                tasks: list[FollowUp], notes: list[dict[str, str]], csrf: str,
                now: datetime, risk: RiskView | None = None) -> str:
    parts = [f'<p class="muted">{e(record.period)}</p>']
    if risk is not None:
        parts.append(risk_section(risk))
    for s in record.sections:
        rows = "".join(f'<tr class="{"off" if r.off_target else ""}"><th>{e(r.label)}</th>'
                       f'<td>{e(r.value)}</td></tr>' for r in s.rows)
        figs = "".join(
            f'<figure><a href="/patients/{e(patient_id)}/figures/{e(key)}.png">'
            f'<img src="/patients/{e(patient_id)}/figures/{e(key)}.png" alt="{e(cap)}"'
            f' loading="lazy"></a><figcaption>{e(cap)}</figcaption></figure>'
            for key, cap in s.figures)
        notes_ = "".join(f"<li>{e(n)}</li>" for n in s.notes)
        parts.append(f'<section class="card"><h2>{e(s.title)}</h2><table>{rows}</table>{figs}'
                     f'<ul class="caveats">{notes_}</ul></section>')
    hist = "".join(
        f'<tr><td>{e(a.observed_at.strftime("%Y-%m-%d %H:%M") if a.observed_at else "")}</td>'
        f'<td>{e(_value(a))}</td><td>{e(a.opened_at.strftime("%Y-%m-%d %H:%M"))}</td>'
        f'<td>{e(a.severity)}</td><td>{e(a.reason)}</td><td>{e(a.state)}</td>'
        f'<td>{e(a.acked_by or "")}</td></tr>' for a in alerts)
    parts.append('<section class="card"><h2>Alerts</h2><table class="history">'
                 '<tr><th>reading (UTC)</th><th>value</th><th>opened (UTC)</th><th>severity</th>'
                 '<th>reason</th><th>state</th><th>acknowledged by</th></tr>'
                 f'{hist}</table></section>')
    done = "".join(f'<tr><td>{e(f.severity)}</td><td>{e(f.reason)}</td>'
                   f'<td>{e(_due(f, now))}</td></tr>' for f in tasks)
    parts.append('<section class="card"><h2>Follow-ups</h2><table class="history">'
                 f'<tr><th>severity</th><th>after</th><th>status</th></tr>{done}</table>'
                 '</section>')
    noted = "".join(f'<li><span class="muted">{e(n["time"][:16])} {e(n["username"])}</span> '
                    f'<span class="note">{e(n["body"])}</span></li>' for n in notes)
    parts.append(
        f'<section class="card"><h2>Notes</h2><ul class="notes">{noted}</ul>'
        f'<form method="post" action="/patients/{e(patient_id)}/notes">{_csrf(csrf)}'
        '<textarea name="body" maxlength="2000" required></textarea>'
        '<button type="submit">Add note</button></form></section>')
    return "".join(parts)


def admin_page(accounts: list[Account], audit: list[dict[str, str]], csrf: str) -> str:
    rows = "".join(
        f'<tr><td>{e(a.username)}</td><td>{e(a.display_name)}</td><td>{e(a.role)}</td>'
        f'<td>{e(a.phone or "")}</td><td>{e(a.locked_until or "")}</td><td>'
        f'<form method="post" action="/admin/accounts/{e(a.username)}/password" class="inline">'
        f'{_csrf(csrf)}<input name="password" type="password" placeholder="new password"'
        ' autocomplete="new-password" required><button type="submit">Reset</button></form></td>'
        '</tr>' for a in accounts)
    roles = "".join(f'<option value="{e(r)}">{e(r)}</option>' for r in Role)
    new = (f'<form method="post" action="/admin/accounts" class="card">{_csrf(csrf)}'
           '<h2>New account</h2><label>User name <input name="username" required></label>'
           '<label>Name <input name="display_name" required></label>'
           f'<label>Role <select name="role">{roles}</select></label>'
           '<label>Phone on care teams <input name="phone" placeholder="+386..."></label>'
           '<label>Password <input name="password" type="password" autocomplete="new-password"'
           ' required></label><button type="submit">Create</button></form>')
    log = "".join(f'<tr><td>{e(r["time"][:19])}</td><td>{e(r["username"])}</td>'
                  f'<td>{e(r["action"])}</td><td>{e(r["target"])}</td><td>{e(r["detail"])}</td>'
                  '</tr>' for r in audit)
    return (f'<section class="card"><h2>Accounts</h2><table><tr><th>user</th><th>name</th>'
            f'<th>role</th><th>phone</th><th>locked until</th><th>password</th></tr>{rows}'
            f'</table></section>{new}<section class="card"><h2>Audit trail</h2><table>'
            f'<tr><th>time</th><th>who</th><th>action</th><th>target</th><th>detail</th></tr>'
            f'{log}</table></section>')
