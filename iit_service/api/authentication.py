"""DRF's token authentication, its one query written out.

Every API request authenticates first. DRF's ``Token.objects.select_related("user").get(key=...)``
spends about 0.3 ms of Python building and compiling the same join on each request; the join below
is that query, written once, returning the same user row through the ORM's converters (iit_service.db;
``objects.raw`` cost another 0.15 ms matching columns to fields on every call). ``request.auth`` is a Token
carrying the key and the user, built without a second read: unlike DRF's it is not a loaded row (no
``created``; never save it).
Nothing here reads more; a token expiry check would have to select ``t.created`` too.

A view whose every request starts with one read it can make in the same statement as the token's (the
single prediction: the scoped patient and their record) says so with ``read_with_token(key)``, which
returns the token's user, or ``None`` for an unknown key, and keeps what it read for its handler;
``NotImplemented`` where it does not (another action, another database). Authentication is the same
either way: the same key, the same refusals, and only then DRF's permission and throttle checks. What
the statement read for a caller who is then refused is dropped unseen; the read is scoped to that user
in the statement itself. It saves a round trip to the database on the service's hottest request; the
price is that a request then throttled (429) has made that read, not the token look-up alone.
"""

from __future__ import annotations

from functools import lru_cache

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from iit_service.db import ModelColumns, execute_prepared


@lru_cache(maxsize=1)
def _token_user() -> tuple[ModelColumns, str]:
    users = ModelColumns(get_user_model(), "u")
    sql = (
        f"SELECT {users.sql()} FROM {get_user_model()._meta.db_table} u "  # noqa: S608 - table names, not input
        f"JOIN {Token._meta.db_table} t ON t.user_id = u.id WHERE t.key = %s"
    )
    return users, sql


class TokenAuthentication(authentication.TokenAuthentication):
    view = None  # the view being authenticated for, when DRF says (its request's parser context)

    def authenticate(self, request):
        self.view = (getattr(request, "parser_context", None) or {}).get("view")
        return super().authenticate(request)

    def authenticate_credentials(self, key: str):
        read_with_token = getattr(self.view, "read_with_token", None)
        user = NotImplemented if read_with_token is None else read_with_token(key)
        if user is NotImplemented:
            user = _user_of(key)
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, Token(key=key, user=user)


def _user_of(key: str):
    users, sql = _token_user()
    with connection.cursor() as cursor:
        execute_prepared(cursor, sql, [key])
        row = cursor.fetchone()
    return None if row is None else users.instance(row)
