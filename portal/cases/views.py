from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from portal.accounts.access import clinics_for
from portal.cases.models import Case


@login_required
def case_list(request):
    cases = Case.objects.filter(clinic__in=clinics_for(request.user)).select_related("clinic")
    query = request.GET.get("q", "").strip()
    if query:
        cases = cases.filter(patient_ref__icontains=query)
    page = Paginator(cases, 25).get_page(request.GET.get("page"))
    return render(request, "cases/case_list.html", {"page": page, "query": query})
