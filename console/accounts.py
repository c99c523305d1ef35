"""The console's own database: accounts, sessions, the audit trail and notes.

Passwords are hashed with scrypt (RFC 7914) at N=2**15, r=8, p=1: the parameters OWASP's
Password Storage Cheat Sheet lists for scrypt (32 MiB, ~0.1 s here), stored with their salt so
they can be raised later. Session tokens are 32 random bytes; only their SHA-256 is kept, so a
copy of the database does not hand out live sessions. Every action is a row in ``audit``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from homevitals.console.errors import ConsoleError
from homevitals.vocab.clock import Clock

__all__ = ["Account", "Accounts", "Role", "Session", "hash_password", "verify_password"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY, display_name TEXT NOT NULL, role TEXT NOT NULL,
    phone TEXT, password TEXT NOT NULL, failures INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, username TEXT, csrf TEXT NOT NULL,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, username TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, username TEXT NOT NULL,
    patient TEXT NOT NULL, alert_id TEXT, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_patient ON notes(patient);
"""

_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD = 10  # NIST SP 800-63B 5.1.1.2 asks for at least 8; a clinic shares terminals


class Role(StrEnum):
    DOCTOR = "doctor"
    HEALTH_MANAGER = "health_manager"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    display_name: str
    role: Role
    phone: str | None
    locked_until: str | None


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # the cookie's value; only its hash is stored
    username: str | None  # None: not signed in (the sign-in form's CSRF token lives here)
    csrf: str


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, key = stored.split("$")
        want = base64.b64decode(key)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), maxmem=_MAXMEM, dklen=len(want))
    except ValueError:
        return False
    return kind == "scrypt" and hmac.compare_digest(got, want)


# Checked against when the user name is unknown, so both cases take the same time.
_DUMMY = hash_password(secrets.token_hex(16))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, path: str | Path, clock: Clock, *, session_hours: float = 12.0,
                 lockout_failures: int = 5, lockout_minutes: float = 15.0) -> None:
        self.clock = clock
        self.session_life = timedelta(hours=session_hours)
        self.lockout_failures = lockout_failures
        self.lockout = timedelta(minutes=lockout_minutes)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConsoleError(f"cannot open the console database {path}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _now(self) -> str:
        return self.clock.now().isoformat()

    # --- accounts -----------------------------------------------------------------------------
    def add(self, username: str, display_name: str, role: Role, password: str,
            phone: str | None, by: str) -> None:
        check_password(password)
        with self._tx() as db:
            try:
                db.execute(
                    "INSERT INTO accounts(username, display_name, role, phone, password,"
                    " created_at) VALUES (?,?,?,?,?,?)",
                    (username, display_name, str(role), phone, hash_password(password),
                     self._now()),
                )
            except sqlite3.IntegrityError:
                raise ConsoleError(f"an account named {username!r} exists already") from None
            self._audit(by, "account created", username, f"role {role}")

    def account(self, username: str) -> Account | None:
        with self._lock:
            r = self._db.execute(
                "SELECT username, display_name, role, phone, locked_until FROM accounts"
                " WHERE username=?", (username,)).fetchone()
        return None if r is None else Account(r[0], r[1], Role(r[2]), r[3], r[4])

    def all(self) -> list[Account]:
        with self._lock:
            rows = self._db.execute(
                "SELECT username, display_name, role, phone, locked_until FROM accounts"
                " ORDER BY username").fetchall()
        return [Account(r[0], r[1], Role(r[2]), r[3], r[4]) for r in rows]

    def reset_password(self, username: str, password: str, by: str) -> None:
        """An admin sets a new password: the lockout is lifted and every session ends."""
        check_password(password)
        with self._tx() as db:
            cur = db.execute(
                "UPDATE accounts SET password=?, failures=0, locked_until=NULL WHERE username=?",
                (hash_password(password), username))
            if not cur.rowcount:
                raise ConsoleError(f"no account named {username!r}")
            db.execute("DELETE FROM sessions WHERE username=?", (username,))
            self._audit(by, "password reset", username)

    def sign_in(self, username: str, password: str, old: Session | None,
                address: str) -> Session | None:
        """A new session for the right password (the old one is dropped: fixation), else None.
        ``lockout_failures`` wrong passwords in a row lock the account for ``lockout``."""
        with self._lock:
            row = self._db.execute(
                "SELECT password, failures, locked_until FROM accounts WHERE username=?",
                (username,)).fetchone()
            ok = verify_password(password, row[0] if row else _DUMMY) and row is not None
            now = self.clock.now()
            if row is not None and row[2] and datetime.fromisoformat(row[2]) > now:
                self.audit(username, "sign-in refused: locked", detail=f"until {row[2]}",
                           address=address)
                return None
            if not ok:
                self._failed(username, row is not None, address)
                return None
            with self._tx() as db:
                db.execute("UPDATE accounts SET failures=0, locked_until=NULL WHERE username=?",
                           (username,))
                if old is not None:
                    db.execute("DELETE FROM sessions WHERE token_hash=?", (_digest(old.token),))
                session = self._new_session(username)
                self._audit(username, "signed in", address=address)
            return session

    def _failed(self, username: str, known: bool, address: str) -> None:
        with self._tx() as db:
            if known:
                failures = db.execute(
                    "UPDATE accounts SET failures=failures+1 WHERE username=? RETURNING failures",
                    (username,)).fetchone()[0]
                if failures >= self.lockout_failures:
                    until = (self.clock.now() + self.lockout).isoformat()
                    db.execute("UPDATE accounts SET locked_until=?, failures=0 WHERE username=?",
                               (until, username))
                    self._audit(username, "account locked", detail=f"until {until}",
                                address=address)
            self._audit(username, "sign-in failed", detail="" if known else "unknown user",
                        address=address)

    # --- sessions -----------------------------------------------------------------------------
    def _new_session(self, username: str | None) -> Session:
        s = Session(secrets.token_urlsafe(32), username, secrets.token_urlsafe(32))
        now = self.clock.now()
        self._db.execute(
            "INSERT INTO sessions(token_hash, username, csrf, created_at, expires_at)"
            " VALUES (?,?,?,?,?)",
            (_digest(s.token), username, s.csrf, now.isoformat(),
             (now + self.session_life).isoformat()))
        return s

    def anonymous(self) -> Session:
        """A session before sign-in, for the sign-in form's CSRF token. Expired sessions are
        purged here, so visits that never sign in do not pile up."""
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (self._now(),))
            return self._new_session(None)

    def session(self, token: str) -> Session | None:
        if not token:
            return None
        with self._lock:
            r = self._db.execute(
                "SELECT username, csrf, expires_at FROM sessions WHERE token_hash=?",
                (_digest(token),)).fetchone()
        if r is None or datetime.fromisoformat(r[2]) <= self.clock.now():
            return None
        return Session(token, r[0], r[1])

    def sign_out(self, session: Session) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE token_hash=?", (_digest(session.token),))
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (self._now(),))
            if session.username:
                self._audit(session.username, "signed out")

    # --- audit and notes ----------------------------------------------------------------------
    def _audit(self, username: str, action: str, target: str = "", detail: str = "",
               address: str = "") -> None:
        self._db.execute(
            "INSERT INTO audit(time, username, action, target, detail, address)"
            " VALUES (?,?,?,?,?,?)", (self._now(), username, action, target, detail, address))

    def audit(self, username: str, action: str, target: str = "", detail: str = "",
              address: str = "") -> None:
        with self._tx():
            self._audit(username, action, target, detail, address)

    def audit_rows(self, limit: int = 200) -> list[dict[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT time, username, action, target, detail, address FROM audit"
                " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        keys = ("time", "username", "action", "target", "detail", "address")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def add_note(self, username: str, patient: str, alert_id: str | None, body: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO notes(time, username, patient, alert_id, body)"
                       " VALUES (?,?,?,?,?)", (self._now(), username, patient, alert_id, body))
            self._audit(username, "note added", patient, alert_id or "")

    def notes(self, patient: str) -> list[dict[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT time, username, alert_id, body FROM notes WHERE patient=?"
                " ORDER BY id DESC", (patient,)).fetchall()
        return [{"time": r[0], "username": r[1], "alert_id": r[2] or "", "body": r[3]}
                for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ConsoleError(f"a password needs at least {MIN_PASSWORD} characters")
