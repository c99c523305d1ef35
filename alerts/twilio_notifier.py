"""Send SMS through Twilio's Messages API with the official ``twilio`` library.

Errors are converted here, where they enter: ``TwilioRestException`` / ``TwilioServiceException``
(an HTTP error answer) and ``requests`` errors (no answer at all) become ``NotifyError`` with
``permanent`` / ``retryable`` set, so the escalation code never sees a Twilio type.

The client does not retry by itself: ``TwilioHttpClient`` only mounts a retrying adapter when
``max_retries`` is given (twilio-python PR #507, issue #829), and requests' default adapter uses
``Retry(0, read=False)``. Retrying is left to the caller, who knows whether an alert is still worth
sending; tests check that a failed send reaches the server exactly once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from homevitals.alerts.errors import AlertsError, NotifyError
from homevitals.alerts.notifier import SendResult

__all__ = ["PERMANENT_RECIPIENT_CODES", "TwilioNotifier"]

logger = logging.getLogger(__name__)

# Twilio error codes after which sending to the same number again is pointless
# (https://www.twilio.com/docs/api/errors/<code>).
PERMANENT_RECIPIENT_CODES: frozenset[int] = frozenset(
    {
        21211,  # invalid 'To' phone number
        21408,  # permission to send to this region is not enabled
        21610,  # recipient replied STOP: unsubscribed / opted out
        21612,  # the 'To' number cannot be reached from the 'From' number
        21614,  # 'To' number is not a mobile number
    }
)


class TwilioNotifier:
    """A ``Notifier`` that sends through Twilio. Blocking: call it off any event loop."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
        api_base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        _check_settings(account_sid, auth_token, from_number, messaging_service_sid, timeout)
        self._account_sid = account_sid
        self._from_number = from_number
        self._messaging_service_sid = messaging_service_sid
        self._status_callback = status_callback
        self._client = _make_client(account_sid, auth_token, api_base_url, timeout)

    @classmethod
    def from_env(
        cls,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
        api_base_url: str | None = None,
        timeout: float = 10.0,
        environ: Mapping[str, str] | None = None,
    ) -> TwilioNotifier:
        """Credentials from TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN or TWILIO_AUTH_TOKEN_FILE."""
        env = os.environ if environ is None else environ
        account_sid = env.get("TWILIO_ACCOUNT_SID", "").strip()
        if not account_sid:
            raise AlertsError("environment variable TWILIO_ACCOUNT_SID is not set")
        return cls(
            account_sid,
            _auth_token_from(env),
            from_number=from_number,
            messaging_service_sid=messaging_service_sid,
            status_callback=status_callback,
            api_base_url=api_base_url,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        # Deliberately without the auth token: reprs end up in logs and tracebacks.
        base_url = self._client.api.base_url
        return f"TwilioNotifier(account_sid={self._account_sid!r}, base_url={base_url!r})"

    def send(self, to: str, body: str) -> SendResult:
        try:
            message = self._client.messages.create(to=to, body=body, **self._sender_params())
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _from_http_error(to, exc) from exc
        except requests.Timeout as exc:
            raise NotifyError(to, f"Twilio did not answer in time: {exc}", retryable=True) from exc
        except requests.ConnectionError as exc:
            raise NotifyError(to, f"cannot reach Twilio: {exc}", retryable=True) from exc
        except (requests.RequestException, TwilioException) as exc:
            raise NotifyError(to, f"request to Twilio failed: {exc}") from exc
        return _result(to, body, message)

    def find_sent(self, to: str, body: str, since: datetime) -> SendResult | None:
        """A message with exactly this body that Twilio took for ``to`` since ``since``.

        Used after a crash between "sending" and "sent": Twilio has no idempotency key, so the
        only way to know whether the request got through is to ask (GET Messages.json?To=...,
        newest first). ``date_created`` is compared here rather than filtering on DateSent,
        which stays empty while a message is queued."""
        try:
            messages = self._client.messages.list(to=to, limit=50)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _from_http_error(to, exc) from exc
        except (requests.RequestException, TwilioException) as exc:
            raise NotifyError(to, f"cannot list messages at Twilio: {exc}", retryable=True) from exc
        for m in messages:
            created = m.date_created
            if m.body == body and (created is None or created >= since):
                return _result(to, body, m)
        return None

    def _sender_params(self) -> dict[str, str]:
        params = {
            "from_": self._from_number,
            "messaging_service_sid": self._messaging_service_sid,
            "status_callback": self._status_callback,
        }
        return {key: value for key, value in params.items() if value is not None}


def _check_settings(
    account_sid: str,
    auth_token: str,
    from_number: str | None,
    messaging_service_sid: str | None,
    timeout: float,
) -> None:
    if not account_sid:
        raise AlertsError("Twilio account SID is empty")
    if not auth_token:
        raise AlertsError("Twilio auth token is empty")
    # Messages API: a sender is From, or a Messaging Service that picks one from its pool.
    if not from_number and not messaging_service_sid:
        raise AlertsError("TwilioNotifier needs from_number or messaging_service_sid")
    if timeout <= 0:
        raise AlertsError(f"Twilio timeout must be positive, got {timeout}")


def _make_client(account_sid: str, auth_token: str, base_url: str | None, timeout: float) -> Any:
    client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
    if base_url is not None:
        # twilio/base/domain.py builds every URL from Domain.base_url.
        client.api.base_url = base_url
        # ClientBase.get_hostname rewrites the host when TWILIO_EDGE / TWILIO_REGION are set,
        # which would send the request somewhere other than the URL asked for.
        client.edge = None
        client.region = None
    return client


def _auth_token_from(env: Mapping[str, str]) -> str:
    token = env.get("TWILIO_AUTH_TOKEN", "")
    path = env.get("TWILIO_AUTH_TOKEN_FILE", "")
    if token and path:
        # Same rule as the official Docker images' *_FILE convention: exclusive, not layered.
        raise AlertsError("set only one of TWILIO_AUTH_TOKEN and TWILIO_AUTH_TOKEN_FILE")
    if token:
        return token.strip()
    if not path:
        raise AlertsError(
            "environment variable TWILIO_AUTH_TOKEN (or TWILIO_AUTH_TOKEN_FILE) is not set"
        )
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AlertsError(f"TWILIO_AUTH_TOKEN_FILE {path}: cannot read: {exc.strerror}") from exc
    if not token:
        raise AlertsError(f"TWILIO_AUTH_TOKEN_FILE {path}: file is empty")
    return token


def _from_http_error(to: str, exc: TwilioRestException | TwilioServiceException) -> NotifyError:
    status = int(exc.status)
    code = _twilio_code(exc.code, status)
    if isinstance(exc, TwilioRestException):
        detail = str(exc.msg)
    else:
        detail = f"{exc.title}: {exc.detail}" if exc.detail else str(exc.title)
    return NotifyError(
        to,
        detail,
        permanent=code in PERMANENT_RECIPIENT_CODES,
        retryable=status == 429 or status >= 500,
        code=code,
        status=status,
    )


def _twilio_code(code: object, status: int) -> int | None:
    # twilio/base/version.py falls back to the HTTP status when the body carries no code;
    # that is not a Twilio error code, so report it as absent.
    if not isinstance(code, int) or code == status:
        return None
    return code


def _result(to: str, body: str, message: Any) -> SendResult:
    sid, status = message.sid, message.status
    if not sid:
        raise NotifyError(to, "Twilio accepted the message but returned no sid")
    logger.info("SMS to %s accepted by Twilio as %s (%s)", to, sid, status)
    return SendResult(sid=str(sid), status=str(status or "unknown"), to=to, body=body)
