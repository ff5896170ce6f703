"""Every list that grows with a case or a clinic is paged: a bounded number of rows and of
queries per page (no N+1), and the page links lead on."""

import re

import pytest
from django.urls import reverse

from tests.portal.bulk import big_case
from tests.portal.reviews_data import model_version

pytestmark = pytest.mark.django_db

# Session (read, and saved for the idle timeout), user, OTP devices, memberships, object, role
# checks, counts, the rows, their relations, audit: a constant, whatever the number of rows.
MAX_QUERIES = 22


@pytest.fixture
def versions(db):
    return [model_version("vgg16", "v1"), model_version("resnet50", "v1")]


def _next_link(html, param):
    match = re.search(r'<a rel="next" href="\?([^"]+)">', html)
    assert match, "no next-page link"
    query = match.group(1).replace("&amp;", "&")
    assert f"{param}=" in query
    return query


def test_review_history_of_a_big_case_is_a_bounded_page_with_a_working_next_link(
    client_for, alice, bob, clinic_a, versions, django_assert_max_num_queries
):
    case = big_case(clinic_a, alice, scans=1500, versions=versions, reviewer=bob, reviewed=400)
    url = reverse("reviews:case_history", args=[case.pk])
    client = client_for(alice)
    with django_assert_max_num_queries(MAX_QUERIES):
        first = client.get(url)
    html = first.content.decode()
    assert first.status_code == 200
    per_page = html.count('class="scan-history"')
    assert 10 <= per_page <= 50, per_page
    assert html.count('class="verdict"') == per_page * 2  # both models of the first 200 reviewed
    assert "scan-00000.jpg" in html and f"scan-{per_page:05d}.jpg" not in html  # oldest first
    pages = -(-1500 // per_page)
    assert f"Page 1 of {pages}" in html

    second = client.get(f"{url}?{_next_link(html, 'page')}").content.decode()
    assert second.count('class="scan-history"') == per_page
    assert f"scan-{per_page:05d}.jpg" in second and "scan-00000.jpg" not in second
    last = client.get(f"{url}?page={pages}").content.decode()
    assert "scan-01499.jpg" in last and 'rel="next"' not in last


def test_batch_page_pages_its_scans(client_for, alice, clinic_a, versions, django_assert_max_num_queries):
    from portal.cases.models import Batch

    big_case(clinic_a, alice, scans=250, versions=versions)
    url = reverse("cases:batch", args=[Batch.objects.get().pk])
    client = client_for(alice)
    with django_assert_max_num_queries(MAX_QUERIES):
        html = client.get(url).content.decode()
    per_page = html.count('class="result"')
    assert 20 <= per_page <= 100, per_page
    assert html.count('class="cell"') == per_page * 2
    second = client.get(f"{url}?{_next_link(html, 'results')}").content.decode()
    assert f"<td>{per_page}</td>" in second and "<td>0</td>" not in second  # positions go on
    pages = -(-250 // per_page)
    last = client.get(f"{url}?results={pages}").content.decode()
    assert last.count('class="result"') == 250 - per_page * (pages - 1)


def test_case_page_pages_uploads_scans_and_history_each_keeping_the_others_place(
    client_for, alice, bob, clinic_a, versions, django_assert_max_num_queries
):
    case = big_case(clinic_a, alice, scans=600, versions=versions, batches=30, reviewer=bob, reviewed=300)
    url = reverse("cases:detail", args=[case.pk])
    client = client_for(alice)
    with django_assert_max_num_queries(MAX_QUERIES + 6):  # + the upload form's model choices
        html = client.get(url).content.decode()
    uploads = html[html.index("<h2>Uploads"):html.index("<h2>Scans")]
    per_page = uploads.count("<tr>") - 1  # the header row
    assert 5 <= per_page <= 20, per_page
    assert 0 < html.count('class="prediction"') <= 100
    assert 0 < html.count('loading="lazy" width="96"') <= 100
    page = client.get(f"{url}?history=3&{_next_link(uploads, 'uploads')}").content.decode()
    uploads = page[page.index("<h2>Uploads"):page.index("<h2>Scans")]
    assert uploads.count("<tr>") - 1 == min(per_page, 30 - per_page)
    assert "history=3" in uploads  # paging the uploads keeps the history's page


def test_case_list_review_queue_and_audit_list_are_bounded(
    client_for, alice, bob, carol, clinic_a, versions, django_assert_max_num_queries
):
    from portal.audit.models import AuditEvent
    from portal.cases.views import CASES_PER_PAGE

    for i in range(CASES_PER_PAGE + 5):
        big_case(clinic_a, alice, scans=2, versions=versions[:1], ref=f"P-{i:03d}")
    big_case(clinic_a, alice, scans=400, versions=versions, ref="P-BIG")  # the latest activity
    AuditEvent.objects.bulk_create(
        AuditEvent(actor=alice, actor_name="alice", clinic=clinic_a, action="case_view") for _ in range(300)
    )
    clinician, reviewer, admin = client_for(alice), client_for(bob), client_for(carol)
    with django_assert_max_num_queries(MAX_QUERIES):
        html = clinician.get(reverse("cases:list")).content.decode()
    assert len(re.findall(r'href="/cases/[0-9a-f-]{36}/"', html)) == CASES_PER_PAGE
    assert re.search(r"P-BIG</a></td><td>Clinic A</td><td>400</td>", html)
    with django_assert_max_num_queries(MAX_QUERIES):
        html = reviewer.get(reverse("reviews:queue")).content.decode()
    assert html.count('href="/reviews/predictions/') == 50
    with django_assert_max_num_queries(MAX_QUERIES):
        html = admin.get(reverse("audit:events")).content.decode()
    assert html.count("<tr") <= 101


def test_the_queue_and_audit_pagers_keep_the_filters(client_for, alice, bob, carol, clinic_a, versions):
    """Both lists page through the shared pager include, which keeps the filters in its links."""
    from portal.audit.models import AuditEvent

    big_case(clinic_a, alice, scans=70, versions=versions)  # 140 predictions, 70 per model
    AuditEvent.objects.bulk_create(
        AuditEvent(actor=alice, actor_name="alice", clinic=clinic_a, action="case_view") for _ in range(130)
    )
    reviewer = client_for(bob)
    url = reverse("reviews:queue")
    filters = {"model_version": versions[1].pk, "sort": "oldest"}
    html = reviewer.get(url, filters).content.decode()
    query = _next_link(html, "page")
    assert f"model_version={versions[1].pk}" in query and "sort=oldest" in query
    second = reviewer.get(f"{url}?{query}")
    assert [p.model_version_id for p in second.context["page"]] == [versions[1].pk] * 20
    assert "Page 2 of 2" in second.content.decode()

    url = reverse("audit:events")
    html = client_for(carol).get(url, {"action": "case_view", "order": "oldest"}).content.decode()
    query = _next_link(html, "page")
    assert "action=case_view" in query and "order=oldest" in query
    second = client_for(carol).get(f"{url}?{query}")
    assert {e.action for e in second.context["page"].object_list} == {"case_view"}
    assert len(second.context["page"].object_list) == 30
