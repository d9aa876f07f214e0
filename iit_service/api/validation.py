"""Input validation shared by every endpoint: strict serializers, and validating one in a line."""

from __future__ import annotations

from rest_framework import serializers


class StrictInput(serializers.Serializer):
    """Refuses fields it does not declare, so a misspelt field is an error rather than silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def validated(serializer_class, data, **context) -> dict:
    """``data`` validated by ``serializer_class``; invalid input is a 400 naming its fields."""
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
