"""The console's security, over real HTTP against a real ``homevitals console`` process:
who sees which patient, CSRF, escaping, session rotation, lockout, and the audit trail."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from console_site import EVIL, PASSWORD, Client, Site, adduser

from homevitals.alerts.ledger import Ledger


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("console")).start()
    yield s
    s.stop()


def _audit(site: Site) -> list[tuple[str, str, str]]:
    with sqlite3.connect(site.cfg.console.db_path) as db:
        return [tuple(r) for r in db.execute("SELECT username, action, target FROM audit")]


def test_a_doctor_gets_404_for_another_doctors_patient(site: Site) -> None:
    site.fire("bor")
    a = Client(site.port)
    assert a.sign_in("doca") == 303
    status, _, page = a.get("/patients")
    assert status == 200 and "Ana Novak" in page and "Bor Zupan" not in page
    assert a.get("/patients/bor")[0] == 404
    assert a.get("/api/patients/bor")[0] == 404
    assert a.get("/patients/bor/figures/daily.png")[0] == 404
    assert a.get("/patients/nobody")[0] == 404  # unknown and forbidden look the same
    assert a.post("/patients/bor/notes", {"body": "hello"})[0] == 404
    status, _, inbox = a.get("/api/inbox")
    assert status == 200 and all(x["patient"] != "bor" for x in json.loads(inbox)["alerts"])
    b = Client(site.port)
    b.sign_in("docb")
    assert b.get("/api/patients/bor")[0] == 200
    assert b.get("/api/patients/ana")[0] == 404


def test_a_doctor_cannot_acknowledge_another_doctors_alert(site: Site) -> None:
    alert = site.fire("bor", severity="critical")
    a = Client(site.port)
    a.sign_in("doca")
    assert a.post(f"/alerts/{alert}/ack", {"note": ""})[0] == 404
    ledger = Ledger(site.cfg.alerts.outbox_path)
    row = ledger.alert(alert)
    ledger.close()
    assert row is not None and row.acked_at is None


def test_csrf_token_is_required_on_every_post(site: Site) -> None:
    alert = site.fire("ana")
    a = Client(site.port)
    a.sign_in("doca")
    status, _, text = a.post(f"/alerts/{alert}/ack", {"note": "forged"}, csrf=False)
    assert status == 403 and "stale" in text
    assert a.post(f"/alerts/{alert}/ack", {"note": "x", "csrf": "not-the-token"},
                  csrf=False)[0] == 403
    assert a.post("/logout", {}, csrf=False)[0] == 403
    ledger = Ledger(site.cfg.alerts.outbox_path)
    row = ledger.alert(alert)
    ledger.close()
    assert row is not None and row.acked_at is None
    # A sign-in form posted without the token of the page it came from is refused too.
    fresh = Client(site.port)
    assert fresh.post("/login", {"username": "doca", "password": PASSWORD}, csrf=False)[0] == 403
    assert ("doca", "refused: bad CSRF token", f"/alerts/{alert}/ack") in _audit(site)


def test_script_in_a_name_or_a_note_is_shown_as_text(site: Site) -> None:
    alert = site.fire("eva", severity="high")
    a = Client(site.port)
    a.sign_in("doca")
    status, headers, page = a.get("/inbox")
    assert status == 200
    assert "<script>window.pwned" not in page
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;Eva" in page
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    a.post(f"/alerts/{alert}/ack", {"note": "<script>alert('note')</script>"})
    page = a.get("/patients/eva")[2]
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(&#x27;note&#x27;)&lt;/script&gt;" in page
    assert EVIL not in a.get("/patients")[2]


def test_the_session_id_rotates_on_sign_in_and_cookies_are_strict(site: Site) -> None:
    c = Client(site.port)
    _, headers, _ = c.get("/login")
    before = c.cookie
    assert before and "HttpOnly" in headers["Set-Cookie"]
    assert "SameSite=Strict" in headers["Set-Cookie"]
    status, headers, _ = c.post("/login", {"username": "doca", "password": PASSWORD})
    assert status == 303 and c.cookie != before
    # The pre-sign-in session is gone: a fixed cookie planted by someone else grants nothing.
    planted = Client(site.port)
    planted.cookie = before
    assert planted.get("/api/inbox")[0] == 401
    assert c.get("/api/inbox")[0] == 200
    assert c.post("/logout", {})[0] == 403  # the CSRF token of the old session is void too
    c.get("/inbox")
    assert c.post("/logout", {})[0] == 303
    assert c.get("/api/inbox")[0] == 401


def test_five_wrong_passwords_lock_the_account(site: Site) -> None:
    assert adduser(site.config, "docc", "doctor", "+15550100009").returncode == 0
    c = Client(site.port)
    for _ in range(5):
        assert c.sign_in("docc", "wrong password!") == 401
    assert c.sign_in("docc") == 401  # the right password, but locked for 15 minutes
    rows = _audit(site)
    assert rows.count(("docc", "sign-in failed", "")) == 5
    assert ("docc", "account locked", "") in rows
    assert ("docc", "sign-in refused: locked", "") in rows
    # An admin's password reset lifts the lock.
    admin = Client(site.port)
    assert admin.sign_in("admin") == 303
    status, _, page = admin.post("/admin/accounts/docc/password", {"password": "new password 1"})
    assert status == 200 and "Password reset" in page
    assert c.sign_in("docc", "new password 1") == 303
    assert ("admin", "password reset", "docc") in _audit(site)


def test_acknowledging_is_audited_and_written_to_the_ledger(site: Site) -> None:
    alert = site.fire("ana", severity="critical")
    a = Client(site.port)
    a.sign_in("doca")
    status, headers, _ = a.post(f"/alerts/{alert}/ack", {"note": "called her, she is fine"})
    assert status == 303 and headers["Location"] == "/inbox?done=acked"
    ledger = Ledger(site.cfg.alerts.outbox_path)
    row = ledger.alert(alert)
    history = ledger.history("ana")
    ledger.close()
    assert row is not None and row.state == "acknowledged"
    assert row.acked_by == f"Dr. 1 (family_doctor, {'+15550100001'})"  # as for an SMS reply
    log = next(h["log"] for h in history if h["alert_id"] == alert)
    assert any("via the console" in entry for entry in log)  # type: ignore[union-attr]
    rows = _audit(site)
    assert ("doca", "alert acknowledged", "ana") in rows
    assert ("doca", "note added", "ana") in rows
    assert ("doca", "signed in", "") in rows
    assert alert not in a.get("/inbox/list")[2]


def test_non_admins_cannot_manage_accounts(site: Site) -> None:
    a = Client(site.port)
    a.sign_in("doca")
    assert a.get("/admin")[0] == 404
    assert a.post("/admin/accounts/docb/password", {"password": "taken over!!"})[0] == 404
    assert Client(site.port).sign_in("docb") == 303


def test_adduser_reads_the_password_from_stdin_and_refuses_short_ones(tmp_path: Path) -> None:
    s = Site(tmp_path)
    done = adduser(s.config, "short", "doctor", password="abc")
    assert done.returncode == 1 and "at least 10 characters" in done.stderr


def test_high_and_critical_alerts_create_follow_ups_only_their_doctor_can_close(
    site: Site,
) -> None:
    high, critical = site.fire("ana", severity="high"), site.fire("ana", severity="critical")
    medium = site.fire("ana", severity="medium")
    a = Client(site.port)
    a.sign_in("doca")
    tasks = {f["alert_id"]: f for f in json.loads(a.get("/api/followups")[2])["followups"]}
    assert high in tasks and critical in tasks and medium not in tasks
    ledger = Ledger(site.cfg.alerts.outbox_path)
    opened = {x: datetime.fromisoformat(ledger.alert(x).opened_at)  # type: ignore[union-attr]
              for x in (high, critical)}
    ledger.close()
    assert datetime.fromisoformat(tasks[high]["due_at"]) == opened[high] + timedelta(hours=48)
    assert datetime.fromisoformat(tasks[critical]["due_at"]) == (
        opened[critical] + timedelta(hours=24))
    assert tasks[high]["assignee"] == "Dr. 1 (family_doctor)"
    b = Client(site.port)
    b.sign_in("docb")
    assert b.post(f"/followups/{high}/done", {"outcome": "not mine"})[0] == 404
    status, headers, _ = a.post(f"/followups/{high}/done", {"outcome": "  "})
    assert headers["Location"] == "/followups?done=empty"
    status, headers, _ = a.post(f"/followups/{high}/done", {"outcome": "Visited: <b>fine</b>"})
    assert status == 303 and headers["Location"] == "/followups?done=done"
    remaining = json.loads(a.get("/api/followups")[2])["followups"]
    assert high not in {f["alert_id"] for f in remaining}
    page = a.get("/patients/ana")[2]
    assert "Visited: &lt;b&gt;fine&lt;/b&gt;" in page
    assert ("doca", "follow-up done", "ana") in _audit(site)
