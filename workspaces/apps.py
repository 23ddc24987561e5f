from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lanes.signals import (
            lane_detail_requested,
            lane_events_journaled,
            worktree_facts_requested,
        )
        from workspaces.checks import check_turn_outputs
        from workspaces.gitfacts import worktree_facts_receiver
        from workspaces.presenters import lane_detail_receiver

        lane_events_journaled.connect(
            check_turn_outputs, dispatch_uid="workspaces.check_turn_outputs"
        )
        lane_detail_requested.connect(
            lane_detail_receiver, dispatch_uid="workspaces.lane_detail"
        )
        worktree_facts_requested.connect(
            worktree_facts_receiver, dispatch_uid="workspaces.worktree_facts"
        )
