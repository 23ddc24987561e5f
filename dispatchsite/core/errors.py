"""Typed errors. Each maps to one CLI exit status and one HTTP status."""

from __future__ import annotations

from typing import Any, ClassVar


class DispatchError(Exception):
    code: ClassVar[str] = "internal"
    exit_status: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(
        self, message: str, *, hint: str = "", data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.data = data or {}

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "exit_status": self.exit_status,
        }
        if self.hint:
            body["hint"] = self.hint
        if self.data:
            body["data"] = self.data
        return {"error": body}


class ValidationError(DispatchError):
    code = "validation"
    exit_status = 2
    http_status = 400


class NotFoundError(DispatchError):
    code = "not_found"
    exit_status = 4
    http_status = 404


class LaneBusyError(DispatchError):
    code = "lane_busy"
    exit_status = 5
    http_status = 409


class ApprovalRequiredError(DispatchError):
    code = "approval_required"
    exit_status = 6
    http_status = 409


class AuthorityError(DispatchError):
    code = "authority"
    exit_status = 7
    http_status = 403


class AppServerError(DispatchError):
    code = "app_server"
    exit_status = 8
    http_status = 502


class StagingError(DispatchError):
    code = "staging"
    exit_status = 9
    http_status = 400


class HostUnavailableError(AppServerError):
    """The lane's host has no worker holding a live lease: answered at once.

    An AppServerError, so code that treats "the app-server is unreachable"
    (offline reads, queueing) treats this the same; only the status differs.
    """

    code = "host_unavailable"
    exit_status = 10
    http_status = 503


class CapabilityUnavailableError(DispatchError):
    """The pinned app-server offers no method for this op."""

    code = "capability_unavailable"
    exit_status = 8
    http_status = 501


class NotStartedError(DispatchError):
    """DISPATCH_HOME has no database yet: dispatch was never started there."""

    code = "not_running"


class UnauthorizedError(DispatchError):
    """No token, or one that is unknown or revoked."""

    code = "unauthorized"
    exit_status = 7
    http_status = 401


ERROR_TYPES: tuple[type[DispatchError], ...] = (
    DispatchError,
    ValidationError,
    NotFoundError,
    LaneBusyError,
    ApprovalRequiredError,
    AuthorityError,
    AppServerError,
    StagingError,
    HostUnavailableError,
    CapabilityUnavailableError,
    NotStartedError,
    UnauthorizedError,
)


def error_from_body(body: dict[str, Any]) -> DispatchError:
    """The error an `as_dict` body (a REST error response) stands for."""
    detail = body.get("error") or {}
    kind = next((t for t in ERROR_TYPES if t.code == detail.get("code")), DispatchError)
    return kind(
        str(detail.get("message") or "dispatch refused the request"),
        hint=str(detail.get("hint") or ""),
        data=detail.get("data"),
    )
