"""On PostgreSQL, the database itself refuses changes to a used price's or a redeemed coupon's terms.

- billing_price: once a subscription item, an invoice line or a pending invoice item uses
  the price, the columns of PRICE_TERMS (billing/services/catalog.py) cannot change;
  nickname, lookup key, active flag, trial days and metadata still can.
- billing_coupon: once redeemed (times_redeemed > 0, or a subscription holds it), the
  columns of COUPON_TERMS (billing/services/coupons.py) cannot change; name, limits,
  expiry, active flag and the redemption counter still can.
- billing_coupon_applies_to: a redeemed coupon's products cannot be added or removed.
The services enforce the same rules on every database (price_update, coupon_update).
"""

from django.db import migrations

PRICE_TERMS = (
    "product_id", "currency", "type", "scheme", "unit_amount", "tiers", "package_size", "package_rounding",
    "cycle", "usage_type", "meter_id", "tax_behavior",
)  # fmt: skip
COUPON_TERMS = ("percent_off", "amount_off", "currency", "duration", "duration_in_periods")


def _changed(columns):
    return " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in columns)


FORWARD = """
CREATE OR REPLACE FUNCTION tarif_price_frozen() RETURNS trigger AS $$
BEGIN
    IF ({price_changed}) AND (
        EXISTS (SELECT 1 FROM billing_subscriptionitem WHERE price_id = OLD.id)
        OR EXISTS (SELECT 1 FROM invoices_invoiceline WHERE price_id = OLD.id)
        OR EXISTS (SELECT 1 FROM billing_invoiceitem WHERE price_id = OLD.id)
    ) THEN
        RAISE EXCEPTION 'price % is used by subscriptions or invoices: its terms cannot change', OLD.id
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tarif_price_frozen BEFORE UPDATE ON billing_price
    FOR EACH ROW EXECUTE FUNCTION tarif_price_frozen();

CREATE OR REPLACE FUNCTION tarif_coupon_is_redeemed(coupon bigint) RETURNS boolean AS $$
    SELECT EXISTS (SELECT 1 FROM billing_coupon WHERE id = coupon AND times_redeemed > 0)
        OR EXISTS (SELECT 1 FROM billing_subscription WHERE coupon_id = coupon);
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION tarif_coupon_frozen() RETURNS trigger AS $$
BEGIN
    IF ({coupon_changed}) AND (OLD.times_redeemed > 0 OR tarif_coupon_is_redeemed(OLD.id)) THEN
        RAISE EXCEPTION 'coupon % has been redeemed: its terms cannot change', OLD.id USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tarif_coupon_frozen BEFORE UPDATE ON billing_coupon
    FOR EACH ROW EXECUTE FUNCTION tarif_coupon_frozen();

CREATE OR REPLACE FUNCTION tarif_coupon_products_frozen() RETURNS trigger AS $$
DECLARE
    coupon bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN coupon := NEW.coupon_id; ELSE coupon := OLD.coupon_id; END IF;
    IF tarif_coupon_is_redeemed(coupon)
       OR (TG_OP = 'UPDATE' AND tarif_coupon_is_redeemed(NEW.coupon_id)) THEN
        RAISE EXCEPTION 'coupon % has been redeemed: its products cannot change', coupon USING ERRCODE = 'P0001';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tarif_coupon_products_frozen BEFORE INSERT OR UPDATE OR DELETE ON billing_coupon_applies_to
    FOR EACH ROW EXECUTE FUNCTION tarif_coupon_products_frozen();
""".replace("{price_changed}", _changed(PRICE_TERMS)).replace("{coupon_changed}", _changed(COUPON_TERMS))

BACKWARD = """
DROP TRIGGER IF EXISTS tarif_price_frozen ON billing_price;
DROP FUNCTION IF EXISTS tarif_price_frozen();
DROP TRIGGER IF EXISTS tarif_coupon_frozen ON billing_coupon;
DROP FUNCTION IF EXISTS tarif_coupon_frozen();
DROP TRIGGER IF EXISTS tarif_coupon_products_frozen ON billing_coupon_applies_to;
DROP FUNCTION IF EXISTS tarif_coupon_products_frozen();
DROP FUNCTION IF EXISTS tarif_coupon_is_redeemed(bigint);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_livemode"), ("invoices", "0001_initial")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
