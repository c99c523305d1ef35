"""The SMS path through the real twilio client, against a stand-in held to Twilio's OpenAPI."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from twilio_standin import (
    CONTRACT_PATH,
    MESSAGES,
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TwilioStandin,
    load_contract,
)

from homevitals.alerts.errors import AlertsError, NotifyError
from homevitals.alerts.notifier import ConsoleNotifier, SendResult
from homevitals.alerts.twilio_notifier import TwilioNotifier

FROM = "+15005550006"
DOCTOR = "+38640111222"
BODY = "homevitals: Ana Novak, blood pressure 182/110 mmHg at 07:42 (limit 160/100)."
SERVICE_SID = "MG" + "ab" * 16


@pytest.fixture
def standin() -> Iterator[TwilioStandin]:
    with TwilioStandin() as server:
        yield server


@pytest.fixture
def notifier(standin: TwilioStandin) -> TwilioNotifier:
    return TwilioNotifier(
        TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, from_number=FROM, api_base_url=standin.base_url
    )


def raw_client(standin: TwilioStandin, token: str = TEST_AUTH_TOKEN) -> Client:
    """The bare twilio client, for requests our notifier would never make."""
    client = Client(TEST_ACCOUNT_SID, token)
    client.api.base_url = standin.base_url
    return client


def send_fails(notifier: TwilioNotifier) -> NotifyError:
    with pytest.raises(NotifyError) as caught:
        notifier.send(DOCTOR, BODY)
    return caught.value


def test_sms_arrives_with_recipient_sender_and_body(
    standin: TwilioStandin, notifier: TwilioNotifier
) -> None:
    result = notifier.send(DOCTOR, BODY)

    [sent] = standin.messages
    assert (sent.to, sent.from_, sent.body) == (DOCTOR, FROM, BODY)
    assert result == SendResult(sid=sent.sid, status="queued", to=DOCTOR, body=BODY)
    assert standin.violations == []


def test_messaging_service_and_status_callback_reach_twilio(standin: TwilioStandin) -> None:
    notifier = TwilioNotifier(
        TEST_ACCOUNT_SID,
        TEST_AUTH_TOKEN,
        messaging_service_sid=SERVICE_SID,
        status_callback="https://alerts.example.org/twilio/status",
        api_base_url=standin.base_url,
    )

    result = notifier.send(DOCTOR, BODY)

    [sent] = standin.messages
    assert sent.from_ is None
    assert sent.messaging_service_sid == SERVICE_SID
    assert sent.status_callback == "https://alerts.example.org/twilio/status"
    assert result.status == "accepted"
    assert standin.violations == []


def test_sent_message_can_be_fetched_by_sid(
    standin: TwilioStandin, notifier: TwilioNotifier
) -> None:
    result = notifier.send(DOCTOR, BODY)

    fetched = raw_client(standin).messages(result.sid).fetch()

    assert (fetched.sid, fetched.to, fetched.body) == (result.sid, DOCTOR, BODY)
    assert standin.violations == []


def test_request_without_body_is_a_contract_violation(standin: TwilioStandin) -> None:
    with pytest.raises(TwilioRestException) as caught:
        raw_client(standin).messages.create(to=DOCTOR, from_=FROM)

    assert caught.value.status == 400
    assert standin.messages == []
    [violation] = standin.violations
    assert violation.method == "POST"
    assert violation.problems == ("Messages.json: one of Body, MediaUrl or ContentSid is required",)


def test_unknown_and_mistyped_parameters_are_violations(standin: TwilioStandin) -> None:
    client = raw_client(standin)
    url = f"{standin.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"
    form = {"To": DOCTOR, "From": FROM, "Body": BODY, "ValidityPeriod": "soon", "Colour": "red"}

    response = client.request("POST", url, data=form)

    assert response.status_code == 400
    assert json.loads(response.text)["status"] == 400
    [violation] = standin.violations
    assert "parameter ValidityPeriod: 'soon' is not of type 'integer'" in violation.problems
    assert any("'Colour' was unexpected" in problem for problem in violation.problems)


def test_request_without_credentials_is_a_violation(standin: TwilioStandin) -> None:
    url = f"{standin.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"

    response = requests.post(url, data={"To": DOCTOR, "From": FROM, "Body": BODY}, timeout=5)

    assert response.status_code == 401
    assert "Basic" in standin.violations[0].problems[0]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limit_and_server_errors_are_retryable_and_not_retried_silently(
    standin: TwilioStandin, notifier: TwilioNotifier, status: int
) -> None:
    standin.fail_next(status=status)

    error = send_fails(notifier)

    assert (error.retryable, error.permanent, error.status) == (True, False, status)
    assert DOCTOR in str(error)
    assert len(standin.requests) == 1  # the twilio client made no retry of its own
    assert standin.violations == []


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (21211, "The 'To' number +38640111222 is not a valid phone number."),
        (21610, "Attempt to send to unsubscribed recipient"),
        (21614, "'To' number is not a valid mobile number"),
        (21408, "Permission to send an SMS has not been enabled for the region indicated"),
    ],
)
def test_recipient_errors_are_permanent(
    standin: TwilioStandin, notifier: TwilioNotifier, code: int, message: str
) -> None:
    standin.fail_next(status=400, code=code, message=message)

    error = send_fails(notifier)

    assert (error.permanent, error.retryable, error.code, error.status) == (True, False, code, 400)
    assert DOCTOR in str(error)
    assert f"Twilio error {code}" in str(error)
    assert message in str(error)


def test_wrong_auth_token_is_rejected_with_401(standin: TwilioStandin) -> None:
    with pytest.raises(TwilioRestException) as caught:
        raw_client(standin, token="not-the-token").messages.create(to=DOCTOR, from_=FROM, body=BODY)
    # What the real client raises for Twilio's 401 answer.
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert caught.value.msg == "Unable to create record: Authenticate"

    notifier = TwilioNotifier(
        TEST_ACCOUNT_SID, "not-the-token", from_number=FROM, api_base_url=standin.base_url
    )
    error = send_fails(notifier)
    assert (error.status, error.code, error.permanent, error.retryable) == (
        401,
        20003,
        False,
        False,
    )
    assert "not-the-token" not in str(error)
    assert standin.messages == [] and standin.violations == []


def test_connection_refused_is_retryable() -> None:
    with TwilioStandin() as server:
        base_url = server.base_url
    notifier = TwilioNotifier(
        TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, from_number=FROM, api_base_url=base_url
    )

    error = send_fails(notifier)

    assert (error.retryable, error.permanent, error.status, error.code) == (True, False, None, None)
    assert "cannot reach Twilio" in str(error)
    assert isinstance(error.__cause__, requests.ConnectionError)


def test_slow_answer_times_out_as_retryable(standin: TwilioStandin) -> None:
    notifier = TwilioNotifier(
        TEST_ACCOUNT_SID,
        TEST_AUTH_TOKEN,
        from_number=FROM,
        api_base_url=standin.base_url,
        timeout=0.3,
    )
    standin.delay_next(1.0)

    error = send_fails(notifier)

    assert error.retryable and not error.permanent
    assert "did not answer in time" in str(error)


def test_auth_token_is_never_logged(
    standin: TwilioStandin, notifier: TwilioNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    notifier.send(DOCTOR, BODY)

    assert "SMS to +38640111222 accepted by Twilio" in caplog.text
    assert TEST_AUTH_TOKEN not in caplog.text
    assert TEST_AUTH_TOKEN not in repr(notifier)


def test_console_notifier_prints_exactly_the_sms() -> None:
    out = io.StringIO()
    console = ConsoleNotifier(stream=out)

    first = console.send(DOCTOR, "Ana Novak: SpO2 86 %\nCall her on +38641000000.")
    second = console.send("+38640999888", BODY)

    assert out.getvalue() == (
        "SMS to +38640111222 (sid CONSOLE-0001):\n"
        "  Ana Novak: SpO2 86 %\n"
        "  Call her on +38641000000.\n"
        "SMS to +38640999888 (sid CONSOLE-0002):\n"
        f"  {BODY}\n"
    )
    assert (first.sid, second.sid) == ("CONSOLE-0001", "CONSOLE-0002")
    assert second.to == "+38640999888" and second.body == BODY


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID}, "TWILIO_AUTH_TOKEN"),
    ],
)
def test_from_env_names_the_missing_variable(environ: dict[str, str], missing: str) -> None:
    with pytest.raises(AlertsError, match=missing):
        TwilioNotifier.from_env(from_number=FROM, environ=environ)


def test_from_env_reads_the_auth_token_from_a_file(standin: TwilioStandin, tmp_path: Path) -> None:
    token_file = tmp_path / "twilio_token"
    token_file.write_text(TEST_AUTH_TOKEN + "\n", encoding="utf-8")
    environ = {"TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN_FILE": str(token_file)}

    notifier = TwilioNotifier.from_env(
        from_number=FROM, api_base_url=standin.base_url, environ=environ
    )
    notifier.send(DOCTOR, BODY)

    assert [m.to for m in standin.messages] == [DOCTOR]


def test_from_env_rejects_unreadable_token_file_and_double_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    environ = {"TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN_FILE": str(missing)}
    with pytest.raises(AlertsError, match=f"TWILIO_AUTH_TOKEN_FILE {missing}: cannot read"):
        TwilioNotifier.from_env(from_number=FROM, environ=environ)

    environ["TWILIO_AUTH_TOKEN"] = TEST_AUTH_TOKEN
    with pytest.raises(AlertsError, match="only one of"):
        TwilioNotifier.from_env(from_number=FROM, environ=environ)


def test_notifier_needs_a_sender() -> None:
    with pytest.raises(AlertsError, match="from_number or messaging_service_sid"):
        TwilioNotifier(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)


def test_contract_accepts_twilios_own_example_and_catches_drift() -> None:
    contract = load_contract()
    spec = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))
    create = spec["paths"][MESSAGES]["post"]["responses"]["201"]["content"]["application/json"]
    example = create["examples"]["create"]["value"]
    match = contract.find("POST", f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json")
    assert match is not None

    assert contract.check_response(match, 201, example) == []
    drifted = {**example, "status": "posted", "num_media": 0}
    problems = contract.check_response(match, 201, drifted)
    assert any("'posted' is not one of" in problem for problem in problems)
    assert any("0 is not of type 'string', 'null'" in problem for problem in problems)
