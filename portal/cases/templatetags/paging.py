"""{% page_query "param" number %}: the current query string with one page number changed, so
that a page with several paged lists (or filters) keeps the others' positions."""

from typing import Any

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def page_query(context: dict[str, Any], param: str, number: int | str) -> str:
    query = context["request"].GET.copy()
    query[param] = number
    return query.urlencode()
