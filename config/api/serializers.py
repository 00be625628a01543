"""Serializer pieces every resource uses: public ids, references by id, `expand`, problem shapes."""

from __future__ import annotations

import copy
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model, QuerySet
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.ids import InvalidPublicId, pk_from_public_id, prefix_for, public_id
from config.metadata import MAX_METADATA_KEY_LENGTH, MAX_METADATA_KEYS, MAX_METADATA_VALUE_LENGTH
from config.modes import is_mode_scoped, scope_to_mode
from config.money import CurrencyError, validate_currency

# ISO 4217 codes are three upper-case letters; the currency validators of the models say which exist.
CURRENCY_FIELD_KWARGS = {"min_length": 3, "max_length": 3, "help_text": "ISO 4217 code, e.g. EUR."}


@extend_schema_field(
    {
        "type": "string",
        "maxLength": 3,
        # Empty where a currency is optional (a percent-off coupon has none).
        "pattern": "^([A-Za-z]{3})?$",
        "example": "EUR",
        "description": "ISO 4217 code in either case (eur, EUR); returned upper-case.",
    }
)
class CurrencyField(serializers.CharField):
    """An ISO 4217 code accepted in either case (Stripe sends `eur`), stored and returned upper-case.

    A code that does not exist is a field error naming it, in the request's language."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("help_text", _("ISO 4217 code in either case (eur, EUR); returned upper-case."))
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value == "":
            return value
        try:
            return validate_currency(value)
        except CurrencyError as error:
            raise serializers.ValidationError(error.message_text(), code=CurrencyError.code) from None


def is_currency_field(name: str) -> bool:
    return name == "currency" or name.endswith("_currency")


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": MAX_METADATA_KEYS,
        "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE_LENGTH},
        "example": {"crm_id": "A-1042"},
        "description": "Your own key-value pairs: at most 50 keys of 1 to 40 characters, "
        "values text of at most 500 characters (Stripe's limits).",
    }
)
class MetadataField(serializers.DictField):
    """Every writable `metadata` of the API: flat text values, Stripe's limits (config/metadata.py).

    A number value is kept as its text (Stripe stores strings); a boolean, an object or a list
    is a field error, as is a 51st key, a key longer than 40 characters or a value over 500."""

    default_error_messages = {
        "too_many_keys": _("At most {max} metadata keys."),
        "key_length": _("Metadata keys are 1 to {max} characters."),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", serializers.CharField(allow_blank=True, max_length=MAX_METADATA_VALUE_LENGTH))
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if isinstance(data, dict):
            if len(data) > MAX_METADATA_KEYS:
                self.fail("too_many_keys", max=MAX_METADATA_KEYS)
            if any(not key or len(str(key)) > MAX_METADATA_KEY_LENGTH for key in data):
                self.fail("key_length", max=MAX_METADATA_KEY_LENGTH)
            nested = [key for key, value in data.items() if isinstance(value, dict | list)]
            if nested:
                raise serializers.ValidationError(
                    {key: [_("Metadata values are text, not objects or lists.")] for key in nested}
                )
        value: dict[str, str] = super().to_internal_value(data)
        return value


@extend_schema_field(OpenApiTypes.STR)
class PublicIdField(serializers.Field):
    """The object's own id (`cus_42`), read-only."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        kwargs.setdefault("source", "*")
        super().__init__(**kwargs)

    def to_representation(self, value: Model) -> str | None:
        return public_id(value)


@extend_schema_field(OpenApiTypes.STR)
class PublicIdRelatedField(serializers.RelatedField):
    """A reference to another object by its public id; unknown or mistyped ids are field errors.

    Only objects of the request's mode are found: another mode's id is "no such object".
    """

    default_error_messages = {
        "does_not_exist": _("No such object: %(value)s."),
        "invalid": _("Invalid id: %(reason)s."),
    }

    def __init__(self, model: type[Model] | None = None, **kwargs: Any) -> None:
        self.model = model
        super().__init__(**kwargs)

    def _model(self) -> type[Model]:
        if self.model is not None:
            return self.model
        return self.get_queryset().model

    def to_internal_value(self, data: Any) -> Model:
        model = self._model()
        try:
            pk = pk_from_public_id(data, model=model)
        except InvalidPublicId as error:
            raise serializers.ValidationError(
                self.error_messages["invalid"] % {"reason": error}, code="invalid_id"
            ) from None
        queryset = self.get_queryset()
        if is_mode_scoped(queryset.model):
            queryset = scope_to_mode(queryset)
        try:
            return queryset.get(pk=pk)
        except model.DoesNotExist:
            raise serializers.ValidationError(
                self.error_messages["does_not_exist"] % {"value": data}, code="resource_missing"
            ) from None

    def bind(self, field_name: str, parent: Any) -> None:
        """An output reference to a nullable foreign key is nullable in the schema too (the
        response carries `null`, and the OpenAPI schema must say it can)."""
        super().bind(field_name, parent)
        model = getattr(getattr(parent, "Meta", None), "model", None)
        if self.read_only and not self.allow_null and model is not None:
            try:
                model_field = model._meta.get_field(self.source)
            except FieldDoesNotExist:
                return
            self.allow_null = bool(getattr(model_field, "null", False))

    def to_representation(self, value: Model) -> str:
        return f"{prefix_for(self._model())}_{value.pk}"

    def use_pk_only_optimization(self) -> bool:
        return True


def id_or_none(model: type[Model], pk: int | None) -> str | None:
    return None if pk is None else public_id(None, model=model, pk=pk)


class ExpandableMixin:
    """`?expand=customer,subscription` replaces those ids by the nested objects.

    `expandable = {"customer": ("customers.serializers.CustomerSerializer", "customer")}`
    names the field, the serializer to nest (a dotted path, to avoid import cycles) and
    the attribute holding the related object.
    """

    expandable: dict[str, tuple[str, str]] = {}

    def _expanded(self) -> set[str]:
        request = self.context.get("request") if hasattr(self, "context") else None
        if request is None:
            return set()
        raw = request.query_params.get("expand", "")
        return {name.strip() for name in raw.split(",") if name.strip()}

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)  # type: ignore[misc]
        wanted = self._expanded() & set(self.expandable)
        for name in wanted:
            serializer_path, attribute = self.expandable[name]
            related = getattr(instance, attribute, None)
            serializer_class = import_string(serializer_path)
            data[name] = None if related is None else serializer_class(related, context=self.context).data
        return data


def expand_select_related(queryset: QuerySet, request: Any, mapping: dict[str, str]) -> QuerySet:
    """Join what `expand` will read, so an expanded list stays one query."""
    raw = request.query_params.get("expand", "") if request is not None else ""
    related = [mapping[name.strip()] for name in raw.split(",") if name.strip() in mapping]
    return queryset.select_related(*related) if related else queryset


class CachedFieldsMixin:
    """Build a read-only ModelSerializer's fields once per class instead of once per request.

    ModelSerializer introspects the model (verbose names, validators, choices) every time it
    is instantiated: most of the CPU of a list request. Output-only serializers have no
    validation messages to translate, so their fields can be built once and copied.
    """

    def get_fields(self) -> dict[str, Any]:
        cls = type(self)
        cached = cls.__dict__.get("_cached_fields")
        if cached is None:
            cached = super().get_fields()  # type: ignore[misc]
            cls._cached_fields = cached
        return copy.deepcopy(cached)


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, the one shape of every error."""

    type = serializers.CharField(help_text="A URI naming the problem type.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Machine-readable code, e.g. validation_error, resource_missing.")
    field = serializers.CharField(required=False, allow_null=True, help_text="The offending field, when one is.")
    errors = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="Every field error: {field, code, message}."
    )
    instance = serializers.CharField(required=False)


@extend_schema_field({"type": "string", "description": "The object's type."})
class ObjectField(serializers.Field):
    """`"object": "customer"`: says what a JSON object is, as Stripe does."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.object_name = name
        kwargs["read_only"] = True
        kwargs.setdefault("source", "*")
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        return self.object_name


class StrictInputMixin:
    """Refuse parameters the serializer does not declare (Stripe's "Received unknown parameter").

    DRF drops unknown keys silently, so a misspelt or unsupported parameter (`trial_end` on a
    create that only knew `trial_days`) used to be ignored and the request succeed with a
    different meaning. Every input serializer of the API subclasses `StrictSerializer` or
    `StrictModelSerializer`; nested input serializers are checked too, since DRF hands each
    its own mapping through `to_internal_value`. Read-only fields count as unknown in input.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) or hasattr(data, "keys"):
            accepted = {name for name, field in self.fields.items() if not field.read_only}  # type: ignore[attr-defined]
            unknown = sorted(str(key) for key in data.keys() if key not in accepted)
            if unknown:
                errors: dict[str, Any] = {
                    key: [
                        serializers.ErrorDetail(
                            str(_("Unknown parameter: %(name)s.") % {"name": key}), code="unknown_parameter"
                        )
                    ]
                    for key in unknown
                }
                # Name the unknown parameters of nested objects too (`items[0].tax_rates`), so
                # one answer lists them all; other errors wait until the unknown ones are gone.
                try:
                    super().to_internal_value({key: data[key] for key in data.keys() if key in accepted})  # type: ignore[misc]
                except serializers.ValidationError as error:
                    nested = _unknown_only(error.detail)
                    if isinstance(nested, dict):
                        errors.update(nested)
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)  # type: ignore[misc]


def _unknown_only(detail: Any) -> Any:
    """The `unknown_parameter` errors of a DRF error structure, keeping their positions."""
    if isinstance(detail, dict):
        kept = {key: _unknown_only(value) for key, value in detail.items()}
        return {key: value for key, value in kept.items() if value}
    if isinstance(detail, list):
        if all(isinstance(item, serializers.ErrorDetail) for item in detail):
            return [item for item in detail if item.code == "unknown_parameter"]
        kept_items = [_unknown_only(item) for item in detail]
        return kept_items if any(kept_items) else []
    return []


class StrictSerializer(StrictInputMixin, serializers.Serializer):
    """An input serializer that refuses undeclared parameters."""


class StrictModelSerializer(StrictInputMixin, serializers.ModelSerializer):
    """A model input serializer that refuses undeclared parameters; its model's currency
    fields take codes in either case (CurrencyField)."""

    def build_standard_field(self, field_name: str, model_field: Any) -> tuple[type, dict[str, Any]]:
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if is_currency_field(field_name) and issubclass(field_class, serializers.CharField):
            field_class = CurrencyField
            kwargs.pop("min_length", None)
        return field_class, kwargs
