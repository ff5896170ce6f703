"""The filters of a list page (the review queue, the audit trail) as a GET form: the day
range they share, and the query string that carries a list's filters into its links."""

from datetime import datetime, time
from typing import Any, TypeVar

from django import forms
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone

_Rows = TypeVar("_Rows", bound=QuerySet[Any])


class FilterForm(forms.Form):
    """Subclasses add their own fields and put them in order with ``field_order``;
    templates render it with ``{% include "_filter_form.html" %}``."""

    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filter_days(self, queryset: _Rows, field: str) -> _Rows:
        """``queryset`` kept to the rows whose ``field`` falls on the chosen days: from the
        start of ``date_from`` to the end of ``date_to``, in the current time zone. Call it
        on a valid form."""
        tz = timezone.get_current_timezone()
        first, last = self.cleaned_data["date_from"], self.cleaned_data["date_to"]
        if first:
            queryset = queryset.filter(**{f"{field}__gte": datetime.combine(first, time.min, tz)})
        if last:
            queryset = queryset.filter(**{f"{field}__lte": datetime.combine(last, time.max, tz)})
        return queryset

    def kept_query(self) -> str:
        """The submitted filters, as given, as a query string: this form's fields only, so
        a page number or another form's field (the review form's "label") is never
        carried."""
        kept = QueryDict(mutable=True)
        for name in self.fields:
            if self.data.get(name):
                kept[name] = self.data[name]
        return kept.urlencode()
