"""Who is asking: what a service needs to know of a request, without the request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """The user a service scopes and audits by, and where the request came from (the audit record's fields).

    The API builds one per request (``iit_service.api.caller.caller_of``); a command or a job may build its
    own. ``user`` may be anonymous (a login) or None (no user at all).
    """

    user: object | None
    client_address: str | None = None
    request_id: str = ""
    path: str = ""

    @property
    def authenticated_user(self):
        """The user when they are signed in, else None (an audit row's ``user``)."""
        user = self.user
        return user if user is not None and user.is_authenticated else None
