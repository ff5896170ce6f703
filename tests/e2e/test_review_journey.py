"""Done-when for issue 5, in a real browser: a reviewer works through a queue of five
predictions (confirms 3, corrects 2); the case history and the agreement page show exactly
those verdicts, the CSV export's rows match the database, and the audit page lists the
run's events in order."""

import csv

import pytest

from tests.fixtures.users import PASSWORD, enrol_totp, totp_code
from tests.portal.reviews_data import case_with_scans, model_version, predict

pytestmark = pytest.mark.browser

# P(tumor) per scan, and what the reviewer holds true: three confirmations, two corrections.
PROBABILITIES = [0.91, 0.62, 0.48, 0.15, 0.77]
TRUTH = ["tumor", "no_tumor", "no_tumor", "tumor", "tumor"]
#  model:  tumor   tumor       no_tumor    no_tumor  tumor
#  ->      TP      FP (corr.)  TN          FN (corr.) TP


@pytest.fixture
def browser(playwright_browser):
    """tests/e2e/conftest.py's browser; each user gets a context of their own."""
    yield playwright_browser
    # The ORM calls made beside Playwright's event loop used a connection of their own
    # context; close it so the test database can be dropped at the end of the session.
    from django.db import connections

    connections.close_all()


def _login(browser, base, username, device=None):
    """Password, then the TOTP code of ``device`` where the user has one (clinic admins must)."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    if device is not None:
        page.wait_for_url(f"{base}/accounts/two-factor/?next=%2F")
        page.fill("input[name=code]", totp_code(device))
        page.click("#mfa-verify-form button[type=submit]")
    page.wait_for_url(f"{base}/")
    return context, page


def test_reviewer_works_through_the_queue(transactional_db, live_server, browser, clinic_a, alice, bob, carol):
    from classifier.models import Prediction, Review
    from portal.audit.models import AuditEvent
    from portal.reviews.exports import HEADER

    base = live_server.url
    case, batch, scans = case_with_scans(clinic_a, alice, 5, patient_ref="E2E-1")
    predictions = predict(batch, scans, model_version("vgg16", "v1"), PROBABILITIES)
    truth = {str(p.public_id): t for p, t in zip(predictions, TRUTH, strict=True)}
    first_event = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    # --- bob reviews the queue, lowest confidence first ---
    context, page = _login(browser, base, "bob")
    page.click("text=Review queue")
    assert page.inner_text("#queue-count").startswith("5 predictions")
    margins = sorted(predictions, key=lambda p: abs(p.probability - 0.5))
    rows = page.locator("#queue tbody tr")
    assert [rows.nth(i).get_attribute("data-prediction") for i in range(5)] == [str(p.public_id) for p in margins]
    page.locator("#queue tbody tr").first.locator("text=Review").click()
    reviewed_order = []
    for _ in range(5):
        page.wait_for_selector("#review-form")
        public_id = page.url.split("/predictions/")[1].split("/")[0]
        reviewed_order.append(public_id)
        # wait until the browser has finished with the image (loaded or failed), then check it loaded
        # (a function, not a bare expression: Playwright evaluates bare expressions with eval,
        # which the Content-Security-Policy forbids)
        page.wait_for_function("() => document.querySelector('img.scan-large').complete")
        assert page.evaluate("document.querySelector('img.scan-large').naturalWidth") == scans[0].width
        prediction = next(p for p in predictions if str(p.public_id) == public_id)
        if truth[public_id] == prediction.label:
            page.check("input[name=verdict][value=confirmed]")
        else:
            page.check("input[name=verdict][value=corrected]")
            page.select_option("select[name=label]", truth[public_id])
            page.fill("textarea[name=note]", f"corrected {prediction.scan.original_name}")
        with page.expect_navigation():
            page.click("#review-form button[type=submit]")
    assert "The review queue is empty." in page.content()
    assert reviewed_order == [str(p.public_id) for p in margins]

    reviews = list(Review.objects.order_by("created_at", "id"))
    assert [(str(r.prediction.public_id), r.reviewer.username, r.label) for r in reviews] == [
        (pid, "bob", truth[pid]) for pid in reviewed_order]
    assert [r.verdict for r in reviews].count("confirmed") == 3
    assert [r.verdict for r in reviews].count("corrected") == 2
    assert list(Prediction.objects.order_by("pk").values_list("probability", "label")) == [
        (p.probability, p.label) for p in predictions]  # predictions untouched

    # --- the case history shows exactly those verdicts ---
    page.goto(f"{base}/reviews/cases/{case.pk}/history/")
    shown = []
    for section in page.locator("section.scan-history").all():
        name = section.locator("h2").inner_text()
        for row in section.locator("tr.verdict").all():
            cells = [c.inner_text().strip() for c in row.locator("td").all()]
            shown.append((name, cells[1], cells[3], cells[4]))
    expected = [(r.scan.original_name, "bob", r.get_verdict_display(), r.get_label_display()) for r in reviews]
    assert sorted(shown) == sorted(expected)
    context.close()

    # --- the clinic admin: agreement, export, audit ---
    context, page = _login(browser, base, "carol", device=enrol_totp(carol))
    page.click("text=Agreement")
    row = page.locator("#agreement tbody tr").first
    cell = lambda cls: row.locator(f"td.{cls}").inner_text().strip()  # noqa: E731
    assert page.locator("#agreement tbody tr").count() == 1
    assert (cell("n"), cell("confirmed"), cell("corrected")) == ("5", "3", "2")
    assert (cell("tp"), cell("fp"), cell("tn"), cell("fn")) == ("2", "1", "1", "1")
    assert cell("confirmed-rate") == "60% (3/5)"
    assert cell("sensitivity") == "0.667 (2/3)" and cell("specificity") == "0.500 (1/2)"

    page.goto(f"{base}/reviews/cases/{case.pk}/history/")
    with page.expect_download() as download_info:
        page.click("text=Export CSV")
    with open(download_info.value.path(), newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == HEADER
    db_rows = []
    for p in Prediction.objects.filter(scan__case=case).order_by("created_at", "id"):
        for r in p.reviews.order_by("created_at", "id"):
            db_rows.append([str(p.public_id), p.scan.original_name, repr(p.probability), p.label,
                            r.reviewer.username, r.verdict, r.label, r.note])
    pick = [HEADER.index(k) for k in ("prediction_id", "scan_name", "probability_tumor", "predicted_label",
                                      "reviewer", "verdict", "reviewed_label", "review_note")]
    assert [[row[i] for i in pick] for row in rows[1:]] == db_rows
    assert len(rows) == 6

    page.goto(f"{base}/audit/?order=oldest")
    listed = [(r.locator("td").nth(1).inner_text().strip(), r.get_attribute("data-action"))
              for r in page.locator("#events tbody tr").all()]
    run_events = list(AuditEvent.objects.filter(id__gt=first_event).order_by("at", "id"))
    assert listed == [(e.actor_name, e.action) for e in run_events]
    actions = [a for _, a in listed]
    assert actions[0] == "login" and listed[0][0] == "bob"
    assert [a for a in actions if a == "review"] == ["review"] * 5
    assert actions.index("login", 1) > max(i for i, a in enumerate(actions) if a == "review")
    assert actions[-1] == "export" and listed[-1][0] == "carol"
    assert "case_view" in actions and "image_view" in actions
    context.close()
