"""In a real browser, with the real worker and the shipped VGG16 (installed as `start` does):
an upload gets real labels, each result says what P(tumor) means and links to the model card,
the card says the backbone is not ImageNet; a not-assessed result shows the words instead of a
label. Screenshots of the card and of the batch page go to $SCREENSHOT_DIR (default /tmp)."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from ml.shipping import SHIPPED_DIR
from tests.fixtures.images import make_image_bytes
from tests.fixtures.users import PASSWORD
from tests.portal.helpers import make_case

pytestmark = [pytest.mark.browser, pytest.mark.worker]
SHIPPED = json.loads((SHIPPED_DIR / "vgg16" / "ship.json").read_text())["name"]
RESULT = re.compile(r"^(Tumor|No tumor)\s+P\(tumor\) = [01]\.\d{3} — the model's estimated probability of a tumor")
SHOTS = Path(os.environ.get("SCREENSHOT_DIR", "/tmp"))


@pytest.fixture
def shipped_vgg16(transactional_db, settings):
    from classifier.models import ModelVersion

    # The worker reads the default MODEL_ROOT; a copy left there by an earlier test of this
    # session (whose database rows are gone) would block the import.
    shutil.rmtree(Path(settings.MODEL_ROOT) / "vgg16" / SHIPPED, ignore_errors=True)
    call_command("install_shipped_models")
    return ModelVersion.objects.get(architecture="vgg16", version=SHIPPED, is_active=True)


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
    images = [{"name": f"slice-{i}.png", "mimeType": "image/png",
               "buffer": make_image_bytes(size=(96, 96), seed=40 + i, fmt="PNG")} for i in range(3)]
    page.set_input_files('input[type="file"][name="files"]', images)
    page.click("#upload-button")
    expect(page.locator("#batch-counts")).to_contain_text("3 accepted")
    page.wait_for_function("() => document.getElementById('jobs').dataset.finished === 'true'", timeout=240_000)
    page.wait_for_load_state("load")
    expect(page.locator(".job .job-status")).to_have_text(["Succeeded"], timeout=30_000)

    cells = page.locator("#results td.cell")
    expect(cells).to_have_count(3)
    for text in cells.all_inner_texts():
        assert RESULT.search(text), text
    assert f"VGG16 {SHIPPED}" in page.locator("#results thead").inner_text()
    stored = list(Prediction.objects.filter(scan__case=case))
    assert len(stored) == 3 and all(p.label in ("tumor", "no_tumor") and p.assessed for p in stored)

    # A result the model did not assess (what the OOD gate stores) shows the words, no label.
    gated = stored[0]
    Prediction.objects.filter(pk=gated.pk).update(assessed=False, label="", ood_score=31.0)
    page.reload()
    not_assessed = page.locator("#results td.cell .not-assessed")
    expect(not_assessed).to_have_count(1)
    expect(not_assessed).to_have_text(
        "Not assessed: this image does not look like the brain MRI slices the model was trained on")
    page.screenshot(path=str(SHOTS / "neuroai-batch-not-assessed.png"), full_page=True)

    page.locator("#results td.cell a.card-link").first.click()
    expect(page.locator("h1")).to_have_text(f"Model card: VGG16 {SHIPPED}")
    expect(page.locator(".banner-warn")).to_contain_text("not ImageNet-trained")
    expect(page.locator("#card-use")).to_contain_text("Not for diagnosis")
    expect(page.locator("#card-plots img")).to_have_count(2)
    page.screenshot(path=str(SHOTS / "neuroai-model-card.png"), full_page=True)
