"""Input validation shared by every endpoint: strict serializers, and validating one in a line."""

from __future__ import annotations

from rest_framework import serializers


class StrictInput(serializers.Serializer):
    """Refuses fields it does not declare, so a misspelt field is an error rather than silently dropped."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if not unknown:
            return super().to_internal_value(data)
        errors = {name: ["Unknown field."] for name in unknown}
        try:  # the known fields' errors too: an extra field must not hide them
            super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors = {**exc.detail, **errors} if isinstance(exc.detail, dict) else errors
        raise serializers.ValidationError(errors)


def validated(serializer_class, data, **context) -> dict:
    """``data`` validated by ``serializer_class``; invalid input is a 400 naming its fields."""
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
