"""Checked output: does each completed turn's final message match the launch schema?

A `lane_events_journaled` receiver: it runs on the worker's ORM thread, so it
only reads the batch it was given, validates locally and writes one row per
turn; it never calls the app-server.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction

from workspaces.models import LaneLaunch, TurnOutputCheck

TURN_COMPLETED = "turn/completed"
ERROR_MAX = 1000


def final_message(turn: dict[str, Any]) -> str | None:
    """The turn summary's last agent message (turn/completed carries only that)."""
    texts = [
        item.get("text")
        for item in turn.get("items") or []
        if isinstance(item, dict) and item.get("type") == "agentMessage"
    ]
    texts = [t for t in texts if isinstance(t, str)]
    return texts[-1] if texts else None


def output_problem(text: str | None, schema: dict[str, Any]) -> str:
    """'' when `text` is JSON valid against `schema`; else the first error."""
    if text is None:
        return "the turn ended without a final agent message"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"the final message is not JSON: {exc.msg} at line {exc.lineno}"
    # Here, not at module level: every CLI call loads this app, and
    # jsonschema costs it ~30 ms to import.
    import jsonschema

    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator = validator_class(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except jsonschema.exceptions.SchemaError as exc:
        return f"the output schema itself is invalid: {exc.message}"
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"[:ERROR_MAX]


def check_turn_outputs(sender: Any, rows: list[Any], **kwargs: Any) -> None:
    completed = [
        r
        for r in rows
        if r.method == TURN_COMPLETED
        and isinstance(r.params.get("turn"), dict)
        and r.params["turn"].get("status") == "completed"
    ]
    if not completed:
        return
    launches = {
        launch.lane.thread_id: launch
        for launch in LaneLaunch.objects.filter(
            lane__thread_id__in={r.thread_id for r in completed},
            output_schema__isnull=False,
        ).select_related("lane")
    }
    for row in completed:
        launch = launches.get(row.thread_id)
        if launch is None or launch.output_schema is None:
            continue
        turn = row.params["turn"]
        problem = output_problem(final_message(turn), launch.output_schema)
        try:
            with transaction.atomic():
                TurnOutputCheck.objects.create(
                    lane=launch.lane,
                    turn_id=str(turn.get("id") or row.turn_id),
                    output_valid=not problem,
                    error=problem,
                )
        except IntegrityError:
            pass  # a replayed batch: the turn was checked already


def lane_output_checks(lane_id: int) -> list[dict[str, Any]]:
    return [
        {
            "turn_id": c.turn_id,
            "output_valid": c.output_valid,
            "error": c.error or None,
            "checked_at": c.checked_at.isoformat(),
        }
        for c in TurnOutputCheck.objects.filter(lane_id=lane_id)
    ]
