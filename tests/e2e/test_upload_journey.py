"""Done-when for issue 4, in a real browser: log in, create a case, upload 20 generated
images of which 2 are bad, watch the progress reach 100%, see 18 predictions per chosen
model and the 2 rejections with their reasons, and find them in the case history."""

import re

import pytest

from tests.fixtures.images import make_image_bytes
from tests.fixtures.users import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.worker]

GOOD = 18


def files():
    good = [
        {"name": f"mri-{i:02d}.jpg", "mimeType": "image/jpeg", "buffer": make_image_bytes(size=(72, 72), seed=i)}
        for i in range(GOOD)
    ]
    truncated = make_image_bytes(size=(64, 64), seed=500)
    bad = [
        {"name": "report.jpg", "mimeType": "image/jpeg", "buffer": b"Radiology report, plain text.\n" * 20},
        {"name": "cut-short.jpg", "mimeType": "image/jpeg", "buffer": truncated[: len(truncated) // 2]},
    ]
    return good[:9] + bad[:1] + good[9:] + bad[1:]


def test_upload_journey(transactional_db, celery_worker, live_server, page, alice, registered_models):
    from playwright.sync_api import expect

    from classifier.models import Prediction
    from portal.cases.models import Case

    # Log in.
    page.goto("/accounts/login/")
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"], input[type="submit"]')
    expect(page.locator("h1")).to_have_text("Patient cases")

    # Create a case.
    page.click("text=New case")
    page.fill('input[name="patient_ref"]', "E2E-0042")
    page.fill('textarea[name="notes"]', "Second opinion requested.")
    page.click("button:has-text('Create case')")
    expect(page.locator("h1")).to_have_text("Case E2E-0042")
    case = Case.objects.get(patient_ref="E2E-0042")

    # Upload 20 files with both models (offered and checked by default).
    page.set_input_files('input[type="file"][name="files"]', files())
    expect(page.locator("#file-summary")).to_contain_text("20 file(s)")
    for arch in ("vgg16", "resnet50"):
        expect(page.locator(f'input[name="models"][value="{arch}"]')).to_be_checked()
    polls = []
    page.on("request", lambda req: polls.append(req.url) if "/progress/" in req.url else None)
    page.click("#upload-button")
    expect(page.locator("h1")).to_contain_text("Upload of")
    expect(page.locator("#batch-counts")).to_contain_text("20 files received")
    expect(page.locator("#batch-counts")).to_contain_text("18 accepted")
    first_seen = page.locator("#jobs").get_attribute("data-finished")

    # Watch the progress reach 100% for each model (the page reloads itself for the results).
    page.wait_for_function(
        """() => {
            const section = document.getElementById('jobs');
            const bars = [...document.querySelectorAll('.job .job-percent')];
            return section.dataset.finished === 'true' && bars.length === 2
                && bars.every(b => b.textContent.trim() === '100');
        }""",
        timeout=240_000,
    )
    page.wait_for_load_state("load")
    expect(page.locator(".job .job-status")).to_have_text(["Succeeded", "Succeeded"], timeout=30_000)
    if first_seen == "false":
        assert polls, "the progress endpoint was never polled"

    # 18 results, each with a prediction from both models.
    rows = page.locator("#results tbody tr.result")
    expect(rows).to_have_count(GOOD)
    cells = page.locator("#results td.cell")
    expect(cells).to_have_count(GOOD * 2)
    for text in cells.all_inner_texts():
        assert re.search(r"(Tumor|No tumor)\s+P\(tumor\) = (0\.\d{3}|1\.000) — the model's estimated probability",
                         text), text
    header = page.locator("#results thead").inner_text()
    assert "VGG16 test-1" in header and "ResNet50 test-1" in header

    # The 2 rejections with their reasons.
    rejections = page.locator("#rejections tbody tr")
    expect(rejections).to_have_count(2)
    expect(rejections.filter(has_text="report.jpg")).to_contain_text("not a JPEG, PNG or DICOM image")
    expect(rejections.filter(has_text="cut-short.jpg")).to_contain_text("truncated or corrupt image data")

    # The case history lists every prediction, newest first.
    page.click(f"text={case.patient_ref}")
    expect(page.locator("h1")).to_have_text("Case E2E-0042")
    history = page.locator("#history tbody tr.prediction")
    expect(history).to_have_count(GOOD * 2)
    for arch_name in ("VGG16 test-1", "ResNet50 test-1"):
        expect(history.filter(has_text=arch_name)).to_have_count(GOOD)
    expect(page.locator(".thumbs img")).to_have_count(GOOD)
    assert Prediction.objects.filter(scan__case=case).count() == GOOD * 2
    assert Prediction.objects.filter(scan__case=case).values("scan", "model_version").distinct().count() == GOOD * 2


def test_files_dropped_on_the_drop_zone_are_sent(transactional_db, live_server, page, alice, clinic_a, settings):
    """Drag-and-drop: files dropped on the zone fill the form's file field; too many are
    flagged before sending."""
    from playwright.sync_api import expect

    from portal.cases.models import Batch, Case

    case = Case.objects.create(clinic=clinic_a, patient_ref="DROP-1", created_by=alice)
    page.goto("/accounts/login/")
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.goto(f"/cases/{case.pk}/")
    images = [list(make_image_bytes(size=(64, 64), seed=s)) for s in (1, 2, 3)]
    drop = """([images, count]) => {
        const transfer = new DataTransfer();
        for (let i = 0; i < count; i++) {
            const bytes = new Uint8Array(images[i % images.length]);
            transfer.items.add(new File([bytes], `dropped-${i}.jpg`, {type: 'image/jpeg'}));
        }
        const zone = document.getElementById('dropzone');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }"""
    max_files = settings.UPLOAD_MAX_FILES
    page.evaluate(drop, [images, max_files + 1])
    expect(page.locator("#file-summary")).to_contain_text(f"at most {max_files} files")
    page.click("#upload-button")  # refused in the page: nothing is sent
    assert not Batch.objects.exists()
    page.evaluate(drop, [images, 3])
    expect(page.locator("#file-summary")).to_have_text(re.compile(r"^3 file\(s\)"))
    page.click("#upload-button")
    expect(page.locator("#batch-counts")).to_contain_text("3 files received")
    batch = Batch.objects.get()
    assert sorted(batch.scans.values_list("original_name", flat=True)) == [f"dropped-{i}.jpg" for i in range(3)]
    assert batch.accepted_count == 3
