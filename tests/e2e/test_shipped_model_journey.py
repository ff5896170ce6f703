"""In a real browser, with the real worker and the shipped VGG16 (installed as `start` does):
an upload gets real labels, each result says what P(tumor) means and links to the model card,
the card says the backbone is not ImageNet; a not-assessed result shows the words instead of a
label. Screenshots of the card and of the batch page go to $SCREENSHOT_DIR when it is set."""

import re
from pathlib import Path

import pytest

from tests.e2e.screenshots import keep_screenshot
from tests.fixtures.images import make_image_bytes, photograph
from tests.fixtures.shipped import OOD_THRESHOLD, SHIPPED
from tests.fixtures.users import PASSWORD
from tests.portal.helpers import make_case

pytestmark = [pytest.mark.browser, pytest.mark.worker]
RESULT = re.compile(r"^(Tumor|No tumor)\s+P\(tumor\) = [01]\.\d{3} — the model's estimated probability of a tumor")
SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "brain-mri-navoneel"


def test_shipped_model_gives_real_labels_and_its_card(transactional_db, shipped_vgg16, celery_worker,
                                                       live_server, page, alice, clinic_a):
    from playwright.sync_api import expect

    from classifier.models import Prediction

    case = make_case(clinic_a, alice, ref="E2E-SHIP")
    page.goto("/accounts/login/")
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.goto(f"/cases/{case.pk}/")
    # Three brain MRI slices of the public set the model learned from (in distribution), and a
    # picture of noise, which no scanner makes: the gate must not give it a label.
    mris = [SHARED / "yes" / "Y1.jpg", SHARED / "no" / "1 no.jpeg", SHARED / "yes" / "Y10.jpg"]
    images = [{"name": path.name, "mimeType": "image/jpeg", "buffer": path.read_bytes()} for path in mris]
    images.append({"name": "noise.png", "mimeType": "image/png",
                   "buffer": make_image_bytes(size=(128, 128), seed=40, fmt="PNG")})
    # A colour photograph: the model sees it grey, the gate's colour check says why it is no scan.
    images.append({"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photograph()})
    page.set_input_files('input[type="file"][name="files"]', images)
    page.click("#upload-button")
    expect(page.locator("#batch-counts")).to_contain_text("5 accepted")
    page.wait_for_function("() => document.getElementById('jobs').dataset.finished === 'true'", timeout=240_000)
    page.wait_for_load_state("load")
    expect(page.locator(".job .job-status")).to_have_text(["Succeeded"], timeout=30_000)

    cells = page.locator("#results td.cell")
    expect(cells).to_have_count(5)
    texts = cells.all_inner_texts()
    for text in texts[:3]:
        assert RESULT.search(text), text
    assert f"VGG16 {SHIPPED}" in page.locator("#results thead").inner_text()
    stored = {p.scan.original_name: p for p in Prediction.objects.filter(scan__case=case).select_related("scan")}
    assert len(stored) == 5
    assert all(stored[path.name].label in ("tumor", "no_tumor") and stored[path.name].assessed for path in mris)
    # The out-of-distribution gate, through the real worker: the noise gets no label.
    noise = stored["noise.png"]
    assert (noise.assessed, noise.label) == (False, "") and noise.probability is not None
    assert noise.ood_score > OOD_THRESHOLD
    photo = stored["photo.jpg"]
    assert (photo.assessed, photo.label) == (False, "") and "in colour" in photo.not_assessed_reason
    not_assessed = page.locator("#results td.cell .not-assessed")
    expect(not_assessed).to_have_count(2)
    expect(not_assessed).to_have_text(
        ["Not assessed: this image does not look like the brain MRI slices the model was trained on"] * 2)
    # the reason is shown beside the words (the colour noise is also in colour)
    reasons = page.locator("#results td.cell .gate-reason")
    expect(reasons).to_have_count(2)
    photo_reason = "(the image is in colour (55% of it strongly coloured); MRI slices are greyscale)"
    assert photo_reason in reasons.all_inner_texts()
    keep_screenshot(page, "neuroai-batch-not-assessed")

    page.locator("#results td.cell a.card-link").first.click()
    expect(page.locator("h1")).to_have_text(f"Model card: VGG16 {SHIPPED}")
    expect(page.locator(".banner-warn")).to_contain_text("not ImageNet-trained")
    expect(page.locator("#card-use")).to_contain_text("Not for diagnosis")
    expect(page.locator("#card-plots img")).to_have_count(2)
    keep_screenshot(page, "neuroai-model-card")
