"""The first page of an unfiltered list, in SQL compiled once (issue 20, the invoice list).

`GET /api/v1/invoices?limit=20` — no cursor, no filter — is what integrators poll most. Its
query is always the same statement: the list's `.values()` queryset scoped to the key's mode,
ordered by the cursor's ordering, `LIMIT size + 1`. Django compiles that queryset again on every
request (~1 ms of CPU on this machine: a fifth of the request). `FirstPageQuery` compiles it
once per (database alias, mode, size) from the very queryset the general path builds — same
`scope_to_mode`, same ordering, same slice — and afterwards only executes the stored SQL through
the alias' ordinary cursor (execute wrappers, query counting and the health check still apply),
applying the ORM's converters and building the rows as `.values()` does.

What the shortcut relies on: the statement depends only on (alias, mode, size). A list whose
rows depend on anything else (a filter, a cursor, `expand`, the current user) must not use it:
callers take it only when the request carries no parameter but `limit`
(`ApiCursorPagination.paginate_first_page`). tests/api/test_list_fast_paths.py compares the
answers byte for byte with the general path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models import QuerySet

from config.modes import scope_to_mode

# (sql, params, column names, [(position, converters, expression)]); sql None: the mode matches nothing.
_Compiled = tuple[str | None, tuple[Any, ...], list[str], list[tuple[int, list[Any], Any]]]


class FirstPageQuery:
    def __init__(self, queryset: Callable[[], QuerySet], ordering: tuple[str, ...]) -> None:
        """`queryset`: the list's `.values()` queryset (unscoped, unordered or ordered: re-ordered here)."""
        self.queryset, self.ordering = queryset, ordering
        self._compiled: dict[tuple[str, bool, int], _Compiled] = {}
        self._lock = threading.Lock()

    def _compile(self, alias: str, livemode: bool, size: int) -> _Compiled:
        queryset = scope_to_mode(self.queryset(), livemode=livemode).order_by(*self.ordering)[:size]
        query = queryset.query
        names = (
            list(query.selected)
            if query.selected
            else [*query.extra_select, *query.values_select, *query.annotation_select]
        )
        compiler = query.get_compiler(using=alias)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return None, (), names, []
        fields = [selected[0] for selected in compiler.select[: compiler.col_count]]
        converters = [
            (position, functions, expression)
            for position, (functions, expression) in compiler.get_converters(fields).items()
        ]
        return sql, tuple(params), names, converters

    def rows(self, *, livemode: bool, size: int) -> list[dict[str, Any]]:
        """The first `size` rows in this mode, as `.values()` dicts, read where the ORM would read them."""
        model = self.queryset().model
        alias = router.db_for_read(model)
        key = (alias, livemode, size)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._compile(alias, livemode, size)
                self._compiled[key] = compiled
        sql, params, names, converters = compiled
        if sql is None:
            return []
        connection = connections[alias]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        out = []
        for row in fetched:
            values = list(row)
            for position, functions, expression in converters:
                value = values[position]
                for function in functions:
                    value = function(value, expression, connection)
                values[position] = value
            out.append(dict(zip(names, values, strict=True)))
        return out
