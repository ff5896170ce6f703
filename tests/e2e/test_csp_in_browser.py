"""In a real browser, the Content-Security-Policy blocks nothing the portal needs (no page
relies on inline script or style), and a case search keeps the patient reference out of
every URL."""

import pytest

from tests.fixtures.users import PASSWORD
from tests.portal.reviews_data import case_with_scans, model_version, predict

pytestmark = pytest.mark.browser


def test_pages_run_under_the_csp_without_violations_and_search_urls_hold_no_reference(
    transactional_db, page, live_server, clinic_a, alice, bob
):
    case, batch, scans = case_with_scans(clinic_a, alice, 2, patient_ref="CSP-4711")
    predictions = predict(batch, scans, model_version("vgg16", "v1"), [0.8, 0.3])
    violations, urls = [], []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.on("request", lambda req: urls.append(req.url))

    page.goto("/accounts/login/")
    page.fill("#id_username", "bob")  # a reviewer: every page below, no second factor needed
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.fill("input[name=q]", "CSP-4711")
    page.click("form[role=search] button")
    page.wait_for_url("**/?s=*")
    assert page.locator("text=CSP-4711").count() >= 1

    for path in (
        f"/cases/{case.pk}/", f"/batches/{batch.pk}/", f"/scans/{scans[0].pk}/",
        f"/reviews/predictions/{predictions[0].public_id}/",
    ):
        page.goto(path)
        page.wait_for_load_state("load")
    # The review page's layout comes from site.css now, not an inline <style>.
    assert page.eval_on_selector(".review-layout", "el => getComputedStyle(el).display") == "flex"
    assert violations == []
    assert not [url for url in urls if "CSP-4711" in url]
