"""Input of the console's filters and actions, validated before any service runs."""

from __future__ import annotations

from django import forms

from monitoring.models import Alert, AlertRule

PERIODS = [("1", "24 hours"), ("7", "7 days"), ("30", "30 days"), ("365", "1 year")]
SNOOZES = [("1", "1 hour"), ("4", "4 hours"), ("24", "24 hours")]


class AlertFilterForm(forms.Form):
    severity = forms.ChoiceField(choices=[("", "any severity"), *AlertRule.Severity.choices], required=False)
    state = forms.ChoiceField(choices=[("", "any state"), *Alert.State.choices], required=False)
    rule = forms.ModelChoiceField(queryset=AlertRule.objects.order_by("name"), required=False, empty_label="any rule")
    period = forms.ChoiceField(choices=PERIODS, required=False, initial="30")
    alert = forms.IntegerField(required=False, widget=forms.HiddenInput)


class AlertActionForm(forms.Form):
    action = forms.ChoiceField(choices=[("acknowledge", "Acknowledge"), ("snooze", "Snooze"), ("resolve", "Resolve")])
    snooze_hours = forms.ChoiceField(choices=SNOOZES, required=False, initial="4")
    note = forms.CharField(max_length=500, required=False)


class JobRunForm(forms.Form):
    job = forms.CharField(max_length=64)


class ModelActivateForm(forms.Form):
    version_id = forms.IntegerField()


class NotificationTestForm(forms.Form):
    channel = forms.CharField(max_length=16)
