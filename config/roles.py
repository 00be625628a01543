"""Staff role groups and the permissions each one gets.

Finance runs billing and issues integrators' API keys (app `config`: view, add, change;
keys are revoked, never deleted); Support looks at everything and edits customers; Read-only
looks. Rules are by app and action so models added later are covered.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

TARIF_APPS = (
    "customers",
    "billing",
    "wallets",
    "entitlements",
    "quotes",
    "events",
    "invoices",
    "reports",
    "feedback",
    "storefront",
    "einvoicing",
    "ereporting",
    "archive",
    "ledger",
)

ROLE_RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "Finance": {app: ("view", "add", "change", "delete") for app in TARIF_APPS}
    # Finance approves other staff members' refunds (billing.approve_refund; four-eyes: never their own)
    # and issues API keys (config.apikey).
    | {"billing": ("view", "add", "change", "delete", "approve")}
    | {"django_celery_beat": ("view",), "audit": ("view",), "config": ("view", "add", "change")},
    # Reports and the books (revenue, churn, receivables, the ledger) are for finance and auditors, not support.
    "Support": {app: ("view",) for app in TARIF_APPS if app not in ("reports", "ledger")}
    | {"customers": ("view", "add", "change")},
    "Read-only": {app: ("view",) for app in TARIF_APPS},
}
# Finance may not delete what the law says must be kept.
PROTECTED_FROM_DELETE = {
    ("invoices", "invoice"),
    ("invoices", "creditnote"),
    ("invoices", "invoiceline"),
    ("ledger", "journalentry"),
    ("ledger", "journalline"),
    ("archive", "archiverecord"),
}


def sync_role_groups(*, group_model: Any, permission_model: Any) -> None:
    for group_name, rules in ROLE_RULES.items():
        group, _ = group_model.objects.get_or_create(name=group_name)
        wanted = []
        for permission in permission_model.objects.select_related("content_type").filter(
            content_type__app_label__in=rules.keys()
        ):
            action = permission.codename.split("_", 1)[0]
            key = (permission.content_type.app_label, permission.content_type.model)
            if action == "delete" and key in PROTECTED_FROM_DELETE:
                continue
            if action in rules[permission.content_type.app_label]:
                wanted.append(permission)
        group.permissions.set(wanted)


def sync_role_groups_after_migrate(sender: Any, **kwargs: Any) -> None:
    # Permissions are created app by app during post_migrate, so re-sync after each
    # Tarif app's turn; it is idempotent and cheap (three groups).
    if sender.label not in (*TARIF_APPS, "audit", "config"):
        return

    using = kwargs.get("using", "default")
    if using != "default":
        return
    sync_role_groups(group_model=Group, permission_model=Permission)
