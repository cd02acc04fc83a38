"""Output of ``GET /auth/spend``: USD amounts as strings with six decimals, like the runs'."""

from rest_framework import serializers


def _usd() -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=14, decimal_places=6)


class SpendModelOutput(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    cost_usd = _usd()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    calls = serializers.IntegerField()


class SpendDayOutput(serializers.Serializer):
    date = serializers.DateField()
    cost_usd = _usd()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    calls = serializers.IntegerField()
    models = SpendModelOutput(many=True)


class SpendHistoryOutput(serializers.Serializer):
    days = serializers.IntegerField()
    first_day = serializers.DateField()
    last_day = serializers.DateField()
    total_usd = _usd()
    last_24h_usd = _usd()
    daily_budget_usd = serializers.DecimalField(max_digits=14, decimal_places=6, allow_null=True)
    by_day = SpendDayOutput(many=True)
