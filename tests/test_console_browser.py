"""The console in a real browser: Debian's Chromium driven by Playwright (its own browser
download is not reachable here, so ``executable_path`` names the system one).

One story, as a family doctor lives it: sign in on a phone, an alert arrives from the pipeline
(the real alerts daemon, over MQTT) while the inbox is open, acknowledge it from the page, and the
escalation stops; the follow-up it created is done with an outcome; then the patient page draws
its charts. Screenshots at phone and desktop size
are kept in the test's tmp folder.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish
import pytest
from console_site import DOC_A, DOC_B, MANAGER, PASSWORD, Site
from daemons import Daemon, TestClock, wait_until
from playwright.sync_api import Browser, sync_playwright

from homevitals.alerts.ledger import Ledger
from homevitals.vocab import wire
from homevitals.vocab.readings import AlertDecision
from homevitals.vocab.topics import Topics

CHROMIUM = "/usr/bin/chromium"
# Screenshots are kept here after the run (the README's come from it): a test artefact.
ARTEFACTS = Path(os.environ.get("HOMEVITALS_ARTIFACTS", "build/test-artifacts")) / "console"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh does)",
                    pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def story(tmp_path: Path, mosquitto: Any) -> Iterator[tuple[Site, Daemon, TestClock]]:
    route = {"chain": ["family_doctor", "health_manager"], "escalate_after_minutes": 10,
             "renotify_minutes": 10, "max_reminders": 1}
    site = Site(tmp_path, mosquitto.port, notifier="console", routes=[route])
    clock = TestClock(tmp_path)  # the alerts daemon's: the test moves it past the escalation
    alerts = Daemon("alerts", site.config, tmp_path, env=clock.env())
    site.glucose(hours=6 * 24)
    site.start()
    alerts.wait_log("ready: subscribed")
    yield site, alerts, clock
    alerts.terminate()
    site.stop()


def _publish(site: Site, port: int, home: str = "home-a", patient: str = "ana") -> str:
    now = datetime.now(UTC)
    d = AlertDecision(
        alert_id="a" + secrets.token_hex(15), state="firing", home=home,  # type: ignore[arg-type]
        patient=patient, rule="night-low-glucose", severity="high",  # type: ignore[arg-type]
        reason="Night-time low glucose (below 3.9 mmol/L)", time=now, measurement="glucose",
        field="glucose", value=3.1, unit="mmol/L", observed_at=now, trend=-0.12)
    mqtt_publish.single(Topics().alert(home, patient), wire.encode(d), qos=1,
                        hostname="127.0.0.1", port=port)
    return d.alert_id


def _sms_to(log: str, phone: str) -> list[str]:
    """The console notifier's SMS to ``phone`` in a daemon's log, each with its body."""
    return [b for b in log.split("SMS to ")[1:] if b.startswith(f"{phone} (sid")]


def test_a_doctor_acknowledges_a_live_alert_from_the_phone(
    story: tuple[Site, Daemon, TestClock], browser: Browser, mosquitto: Any, tmp_path: Path
) -> None:
    site, alerts, clock = story
    shots = ARTEFACTS
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport=PHONE)
    page.goto(site.url + "/")
    page.fill("input[name=username]", "doca")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox")
    assert page.locator("#inbox-empty").inner_text() == "No open alerts."

    alert = _publish(site, mosquitto.port)  # the page is open: it must show up without a reload
    item = page.locator(f"li[data-alert='{alert}']")
    item.wait_for(timeout=15_000)
    text = item.inner_text()
    assert "Ana Novak" in text and "3.1 mmol/L" in text and "escalation step 1" in text
    assert "now 3.1 mmol/L" in text  # no reading newer than the alert's own
    assert "\u2198 falling (-0.12 mmol/L/min)" in text  # the rule's CGM trend
    wait_until("the doctor's SMS", lambda: f"SMS to {DOC_A}" in alerts.log(), timeout=10)
    page.wait_for_function(  # the next poll lists who has been told
        f"document.querySelector(\"li[data-alert='{alert}'] .told\").textContent"
        ".includes('Dr. 1')", timeout=10_000)
    page.screenshot(path=str(shots / "inbox-phone.png"), full_page=True)

    item.locator("input[name=note]").fill("Called her: had juice, rechecking in 15 min")
    item.locator("button").click()
    page.wait_for_url("**/inbox?done=acked")
    assert "the escalation has stopped" in page.locator(".flash").inner_text()
    assert page.locator(f"li[data-alert='{alert}']").count() == 0

    ledger = Ledger(site.cfg.alerts.outbox_path)
    row = ledger.alert(alert)
    assert row is not None and row.state == "acknowledged" and row.next_step_at is None
    # Bor's alert, not acknowledged, is the control: when the clock passes both alerts' next
    # step (10 min), his reaches the health manager, so the timer has run past Ana's step.
    _publish(site, mosquitto.port, "home-b", "bor")
    wait_until("Bor's doctor's SMS", lambda: _sms_to(alerts.log(), DOC_B), timeout=10)
    clock.advance(11 * 60)
    told = wait_until("Bor's alert at the health manager",
                      lambda: _sms_to(alerts.log(), MANAGER), timeout=15)
    assert "Bor Zupan" in told[0]
    kinds = {h["kind"] for h in ledger.history("ana") if h["alert_id"] == alert}
    ledger.close()
    assert kinds == {"firing"}
    assert not [sms for sms in _sms_to(alerts.log(), MANAGER) if "Ana Novak" in sms]

    page.goto(site.url + "/followups")  # the high alert asks for a call or visit in 48 h
    task = page.locator(f"li[data-task='{alert}']")
    assert "due by" in task.inner_text() and "Dr. 1 (family_doctor)" in task.inner_text()
    task.locator("input[name=outcome]").fill("Home visit: sensor re-sited, glucose 6.1")
    task.locator("button").click()
    page.wait_for_url("**/followups?done=done")
    assert page.locator(f"li[data-task='{alert}']").count() == 0

    page.goto(site.url + "/patients/ana")
    for key in ("agp", "daily"):
        img = page.locator(f"img[src$='/figures/{key}.png']")
        img.scroll_into_view_if_needed()
        # Polled from Python: the page's CSP forbids the eval that wait_for_function's polling
        # uses, and figures are drawn when asked for, so they take a moment.
        wait_until(f"the {key} figure", lambda i=img: i.evaluate("i => i.naturalWidth") > 0,
                   timeout=20)
    assert "Called her: had juice" in page.locator(".notes").inner_text()
    assert "sensor re-sited" in page.inner_text("body")
    assert "time in range 3.9-10.0" in page.locator("section:has(h2:text('Glucose'))"
                                                    ).inner_text()
    assert "Risk tier: low" in page.locator(".risk").inner_text()  # 6.5-9.0 mmol/L, no BP
    page.screenshot(path=str(shots / "patient-phone.png"), full_page=True)

    desk = browser.new_page(viewport=DESKTOP)
    desk.context.add_cookies(page.context.cookies())
    desk.goto(site.url + "/patients/ana")
    desk.screenshot(path=str(shots / "patient-desktop.png"), full_page=True)
    desk.goto(site.url + "/patients")
    assert "Ana Novak" in desk.locator(".patients").inner_text()
    assert "low risk" in desk.locator(".patients").inner_text()
    assert "<script>window.pwned=1</script>Eva" in desk.locator(".patients").inner_text()
    assert desk.evaluate("typeof window.pwned") == "undefined"  # shown, never run
    desk.screenshot(path=str(shots / "patients-desktop.png"), full_page=True)
    desk.goto(site.url + "/inbox")
    desk.screenshot(path=str(shots / "inbox-desktop.png"), full_page=True)
    for name in ("inbox-phone", "patient-phone", "patient-desktop", "patients-desktop",
                 "inbox-desktop"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
    print(f"screenshots in {shots}")
