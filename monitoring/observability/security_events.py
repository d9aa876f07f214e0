"""Logins, failed logins and logouts to the iit.security log.

Django announces these only through its auth signals, so the receivers are
here; they log and do nothing else.
"""

from __future__ import annotations

import logging

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from iit_service.api.caller import client_address

security_log = logging.getLogger("iit.security")


def login_succeeded(sender, request, user, **kwargs) -> None:
    security_log.info("login", extra=_fields("login", request, user.get_username()))


def login_failed(sender, credentials, request=None, **kwargs) -> None:
    # Django has already masked the password in ``credentials``.
    security_log.warning(
        "failed login", extra=_fields("login_failed", request, str(credentials.get("username", ""))[:150])
    )


def logged_out(sender, request, user, **kwargs) -> None:
    security_log.info("logout", extra=_fields("logout", request, user.get_username() if user else None))


def _fields(event: str, request, username: str | None) -> dict:
    return {
        "event": event,
        "user": username,
        "client_address": client_address(request) if request is not None else None,
        "path": request.path if request is not None else None,
    }


def connect() -> None:
    user_logged_in.connect(login_succeeded, dispatch_uid="iit.security.login")
    user_login_failed.connect(login_failed, dispatch_uid="iit.security.login_failed")
    user_logged_out.connect(logged_out, dispatch_uid="iit.security.logout")
