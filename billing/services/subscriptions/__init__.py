"""Subscription lifecycle: create, cancel, pause, resume, trials and status changes.

Every status change locks the subscription row (billing.locks), checks the transition
against billing.states and records a DomainEvent in the same transaction. Plan and
quantity changes live in billing/services/changes.py.

Choices (Stripe's behaviour unless said otherwise):

* Instants are truncated to whole seconds, so a preview and the change that follows
  compute the same proration.
* A trial issues a zero invoice at its start (with any one-time prices and pending
  items, which are charged then), and its current period is the trial itself. At the
  trial's end the billing run renews it: the first paid period starts at trial end.
  Metered usage during a trial is not billed.
* The billing-cycle anchor defaults to the start (or the trial's end). With an
  explicit anchor, the first period runs from the start to the anchor's next
  boundary and is prorated, to the second.
* Pausing stops billing, with no credit for the rest of the period. Resuming starts a
  new period at the resume time (Stripe's `billing_cycle_anchor=now`): the anchor
  moves there and the new period, the usage recorded since the last billed period
  started and pending items are invoiced at once. A paused trial resumes as active.
* Canceling immediately ends the subscription; the prorated credit for unused time,
  if asked for, goes to the customer's balance; pending items and usage are invoiced
  in a final invoice. Canceling at period end only sets a flag: the billing run calls
  `subscription_prepare_renewal`, which cancels at the boundary instead of renewing.

The package: `common` (errors, validation, lock, events), `create`, `lifecycle` (cancel, pause,
resume, trial end, renewal) and `schedules` (changes applied at a boundary).
"""

from billing.services.subscriptions.adjust import (
    subscription_coupon_apply,
    subscription_coupon_remove,
    subscription_discount_add,
    subscription_extend_trial,
)
from billing.services.subscriptions.common import (
    _CHANGEABLE,
    _PRODUCT_FIELD,
    DEFAULT_DAYS_UNTIL_DUE,
    MAX_TRIAL_DAYS,
    CustomerCurrencyMismatch,
    ItemSpec,
    Status,
    SubscriptionConflict,
    SubscriptionError,
    ValidatedItems,
    _advance_discount_counter,
    _product_names,
    _set_status,
    arrears_carry,
    arrears_restart_at,
    arrears_used_items,
    balance_credit,
    change_record,
    changeable_check,
    instant,
    invoice_issue,
    items_apply,
    items_changed_event_data,
    items_validate,
    removed_meter_usage_items,
    subscription_copy,
    subscription_event,
    subscription_lock,
)
from billing.services.subscriptions.create import (
    CreatePreview,
    _trial_end,
    subscription_create,
    subscription_preview_create,
)
from billing.services.subscriptions.lifecycle import (
    _cancel_now,
    _owed_so_far_draft,
    _start_new_period,
    resume_period,
    subscription_cancel,
    subscription_cancel_at,
    subscription_cancel_scheduled,
    subscription_cancel_undo,
    subscription_end_trial,
    subscription_pause,
    subscription_prepare_renewal,
    subscription_resume,
    subscription_transition,
)
from billing.services.subscriptions.schedules import (
    _schedule_event,
    scheduled_change_cancel,
    scheduled_changes_apply_due,
    subscription_schedule_change,
)

__all__ = [
    "Status",
    "MAX_TRIAL_DAYS",
    "DEFAULT_DAYS_UNTIL_DUE",
    "SubscriptionError",
    "SubscriptionConflict",
    "CustomerCurrencyMismatch",
    "ItemSpec",
    "ValidatedItems",
    "_PRODUCT_FIELD",
    "_product_names",
    "items_validate",
    "instant",
    "subscription_lock",
    "subscription_event",
    "_set_status",
    "invoice_issue",
    "balance_credit",
    "subscription_copy",
    "change_record",
    "_advance_discount_counter",
    "items_apply",
    "removed_meter_usage_items",
    "arrears_carry",
    "arrears_restart_at",
    "arrears_used_items",
    "items_changed_event_data",
    "_CHANGEABLE",
    "changeable_check",
    "_trial_end",
    "subscription_create",
    "subscription_extend_trial",
    "subscription_coupon_apply",
    "subscription_coupon_remove",
    "subscription_discount_add",
    "CreatePreview",
    "subscription_preview_create",
    "subscription_transition",
    "_owed_so_far_draft",
    "subscription_cancel",
    "subscription_cancel_at",
    "subscription_cancel_scheduled",
    "_cancel_now",
    "subscription_cancel_undo",
    "subscription_pause",
    "resume_period",
    "_start_new_period",
    "subscription_resume",
    "subscription_end_trial",
    "subscription_prepare_renewal",
    "subscription_schedule_change",
    "_schedule_event",
    "scheduled_change_cancel",
    "scheduled_changes_apply_due",
]
