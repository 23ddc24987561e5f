"""Forms for the console's actions; choices come from the ops' input schemas.

Reading the enums from the registry keeps one list of sandboxes, policies
and modes, and lets the `new` form live here while its op lives in
`workspaces` (lanes never imports it).
"""

from __future__ import annotations

from typing import Any

from django import forms

NONE_CHOSEN = ("", "(default)")


def enum_choices(op_id: str, field: str) -> list[tuple[str, str]]:
    """The values an op's input field accepts, as form choices."""
    from dispatchsite.core.registry import load_ops

    schema = load_ops()[op_id].input_schema()["properties"][field]
    for option in [schema, *schema.get("anyOf", [])]:
        if "enum" in option:
            return [(value, value) for value in option["enum"]]
    raise LookupError(f"{op_id}.{field} has no enum")


def optional(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [NONE_CHOSEN, *choices]


def filled(data: dict[str, Any]) -> dict[str, Any]:
    """Op params from cleaned data: blank fields take the op's defaults."""
    return {key: value for key, value in data.items() if value not in ("", None)}


class ChoicesFromOps(forms.Form):
    # field name -> (op id, input field, optional?)
    op_choices: dict[str, tuple[str, str, bool]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, (op_id, field, blank) in self.op_choices.items():
            choice = self.fields[name]
            assert isinstance(choice, forms.ChoiceField)
            values = enum_choices(op_id, field)
            choice.choices = optional(values) if blank else values


TEXTAREA = forms.Textarea(attrs={"rows": 4, "cols": 80})


class NewLaneForm(ChoicesFromOps):
    op_choices = {
        "sandbox": ("new", "sandbox", True),
        "approval_policy": ("new", "approval_policy", True),
        "approvals": ("new", "approvals", True),
    }
    name = forms.CharField(max_length=200, help_text="the lane's handle is @name")
    cwd = forms.CharField(
        max_length=1024,
        label="Working directory",
        help_text="absolute path of an existing directory on the lane's host",
    )
    text = forms.CharField(
        widget=TEXTAREA, required=False, label="First message", strip=False
    )
    goal = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
        required=False,
        help_text="a native Codex goal objective (an active goal starts turns)",
    )
    model = forms.CharField(
        max_length=100, required=False, help_text="`dispatch models`"
    )
    effort = forms.CharField(
        max_length=32, required=False, help_text="e.g. low, medium, high"
    )
    sandbox = forms.ChoiceField(required=False)
    approval_policy = forms.ChoiceField(required=False)
    approvals = forms.ChoiceField(
        required=False,
        help_text="how approval requests are answered; hold waits for you",
    )

    def params(self) -> dict[str, Any]:
        data = filled(self.cleaned_data)
        data["send"] = bool(data.get("text"))
        return data


class SendForm(ChoicesFromOps):
    op_choices = {"mode": ("send", "mode", False)}
    text = forms.CharField(widget=TEXTAREA, strip=False)
    mode = forms.ChoiceField(initial="send")


class RenameForm(forms.Form):
    new = forms.CharField(max_length=200, label="New name")


class GoalForm(ChoicesFromOps):
    op_choices = {"status": ("goal-set", "status", True)}
    objective = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80}), required=False
    )
    status = forms.ChoiceField(required=False)
    token_budget = forms.IntegerField(min_value=1, required=False)


class ForkForm(forms.Form):
    name = forms.CharField(max_length=200, label="Fork name")
    cwd = forms.CharField(
        max_length=1024, required=False, help_text="default: this lane's directory"
    )


class MessageForm(forms.Form):
    id = forms.IntegerField(min_value=1)


class RequestForm(ChoicesFromOps):
    op_choices = {"decision": ("request-respond", "decision", False)}
    id = forms.IntegerField(min_value=1)
    decision = forms.ChoiceField()
