"""The printable case report: one PDF per case (ReportLab, pure Python).

It holds the patient reference, each accepted scan with its thumbnail, every model's result
on it, the reviewers' verdicts and notes, a summary of each model's card (``ml.card``) and
the decision-support disclaimer. Built in memory from what the database holds; the view
that serves it checks membership and audits it."""

import io
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from classifier.models import NOT_ASSESSED_TEXT, ModelVersion, Prediction
from ml.card import INTENDED_USE, backbone_info, build_card, headline_metrics
from portal.cases.models import Case, Scan

DISCLAIMER = (
    "Decision support only: every result must be confirmed by a qualified clinician. "
    "P(tumor) is the model's estimated probability of a tumor, not a diagnosis."
)
THUMB_MM = 28
GRID = TableStyle([
    ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("FONTSIZE", (0, 0), (-1, -1), 8),
])


def result_text(prediction: Prediction) -> str:
    """The words a result cell shows, for print."""
    if prediction.error:
        return f"Error: {prediction.error}"
    if not prediction.assessed:
        reason = prediction.not_assessed_reason
        return f"{NOT_ASSESSED_TEXT} ({reason})" if reason else NOT_ASSESSED_TEXT
    return (
        f"{prediction.get_label_display()}; P(tumor) = {prediction.probability:.3f} "
        f"(threshold {prediction.threshold:.2f})"
    )


def card_summary(version: ModelVersion, *, min_auc: float, min_accuracy: float) -> list[str]:
    """A few lines of the version's model card."""
    meta = version.metadata or {}
    head = headline_metrics(meta)
    backbone = backbone_info(meta)
    card = build_card(meta, min_auc=min_auc, min_accuracy=min_accuracy)

    def fmt(value: float | None) -> str:
        return "not recorded" if value is None else f"{value:.3f}"

    lines = [
        f"Accuracy {fmt(head['accuracy'])}, ROC AUC {fmt(head['auc'])} ({head['source']}).",
        f"Backbone: {backbone['name']}. Decision threshold: tumor when P(tumor) >= {version.threshold:.2f}.",
    ]
    return lines + list(card.get("warnings", []))


def _thumbnail(scan: Scan, make_thumbnail: Callable[[bytes], bytes]) -> Any:
    try:
        with scan.file.open("rb") as handle:
            data = make_thumbnail(handle.read())
    except (OSError, ValueError):
        return Paragraph("(image unavailable)", getSampleStyleSheet()["BodyText"])
    reader = ImageReader(io.BytesIO(data))
    width, height = reader.getSize()
    scale = THUMB_MM * mm / max(width, height)
    return Image(io.BytesIO(data), width=width * scale, height=height * scale)


def build_report(case: Case, *, make_thumbnail: Callable[[bytes], bytes], min_auc: float, min_accuracy: float,
                 generated_by: Any) -> bytes:
    """The PDF bytes of ``case``'s report."""
    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["BodyText"].clone("small", fontSize=8, leading=10)

    def p(text: Any, style: Any = small) -> Paragraph:
        return Paragraph(escape(str(text)), style)

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm,
        title=f"NeuroAI case report {case.patient_ref}", author="NeuroAI",
    )
    story = [
        Paragraph(escape(f"Case report: {case.patient_ref}"), styles["Title"]),
        p(f"Patient reference: {case.patient_ref}", body),
        p(f"Clinic: {case.clinic}. Case created {case.created_at:%Y-%m-%d %H:%M} by {case.created_by}.", body),
        p(f"Report generated {timezone.localtime():%Y-%m-%d %H:%M %Z} by {generated_by}.", body),
        Spacer(1, 3 * mm),
        Paragraph(escape(DISCLAIMER), styles["Heading4"]),
        Spacer(1, 3 * mm),
    ]
    predictions = (
        Prediction.objects.filter(scan__case=case)
        .select_related("model_version")
        .prefetch_related("reviews__reviewer")
        .order_by("created_at", "id")
    )
    by_scan: dict[Any, list[Prediction]] = {}
    versions: dict[int, ModelVersion] = {}
    for prediction in predictions:
        by_scan.setdefault(prediction.scan_id, []).append(prediction)
        versions[prediction.model_version_id] = prediction.model_version
    scans = case.scans.filter(status=Scan.Status.ACCEPTED).order_by("created_at", "position")
    story.append(Paragraph("Scans and results", styles["Heading2"]))
    if not scans.exists():
        story.append(p("No accepted scans in this case.", body))
    for scan in scans.iterator(chunk_size=50):
        rows = [[p("Model"), p("Result"), p("When"), p("Reviews (verdict, label, reviewer, note)")]]
        for prediction in by_scan.get(scan.pk, []):
            reviews = [
                f"{r.get_verdict_display()} as {r.get_label_display()} by {r.reviewer} "
                f"on {r.created_at:%Y-%m-%d}" + (f": {r.note}" if r.note else "")
                for r in prediction.reviews.all()
            ]
            rows.append([
                p(prediction.model_version.display_name), p(result_text(prediction)),
                p(f"{prediction.created_at:%Y-%m-%d %H:%M}"), p("; ".join(reviews) or "not reviewed"),
            ])
        if len(rows) == 1:
            rows.append([p("—"), p("Not analysed yet"), p(""), p("")])
        results = Table(rows, colWidths=[28 * mm, 45 * mm, 22 * mm, 52 * mm], repeatRows=1)
        results.setStyle(GRID)
        block = Table(
            [[_thumbnail(scan, make_thumbnail), [p(scan.original_name, styles["Heading4"]), results]]],
            colWidths=[(THUMB_MM + 3) * mm, 150 * mm],
        )
        block.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
        story += [KeepTogether(block), Spacer(1, 3 * mm)]
    story.append(Paragraph("Models (from their model cards)", styles["Heading2"]))
    if not versions:
        story.append(p("No model has analysed this case yet.", body))
    for version in versions.values():
        story.append(Paragraph(escape(version.display_name), styles["Heading4"]))
        for line in card_summary(version, min_auc=min_auc, min_accuracy=min_accuracy):
            story.append(p(line, body))
    story.append(Paragraph("Intended use", styles["Heading2"]))
    for line in INTENDED_USE:
        story.append(p(line, body))
    story += [Spacer(1, 3 * mm), Paragraph(escape(DISCLAIMER), styles["Heading4"])]

    def footer(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(15 * mm, 8 * mm, f"{case.patient_ref} · decision support only · page {document.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()
