"""`field__any_of=values`: the `__in` lookup with ONE array parameter on PostgreSQL.

`pk__in=[... 1,000 ids]` sends 1,000 placeholders, and psycopg splits such a query in
Python on every execution (it caches short queries only): ~9 ms per 1,000-id query on the
loaded reference machine, about a tenth of a billing-run chunk's CPU with ~17 of them
(docs/PERFORMANCE.md, "Issue 20: per-invoice profile"). `= ANY(%s)` with one array costs
the same whatever the count. Same results as `__in` (None ignored, an empty list matches
nothing); other databases use `__in` itself. For direct value lists only: a subquery on the
right-hand side falls back to `IN (subquery)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.models import Field, ForeignObject
from django.db.models.lookups import In


class AnyOf(In):
    lookup_name = "any_of"

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, Sequence[object]]:
        if not self.rhs_is_direct_value():
            return super().as_sql(compiler, connection)
        values = list(dict.fromkeys(value for value in self.rhs if value is not None))
        if not values:
            raise EmptyResultSet
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        prepared = [field.get_db_prep_value(value, connection, prepared=True) for value in values]
        return f"{lhs_sql} = ANY(%s)", (*lhs_params, prepared)


Field.register_lookup(AnyOf)
# Relations keep their own lookups (not inherited from Field): `customer_id__any_of=ids`.
ForeignObject.register_lookup(AnyOf)
