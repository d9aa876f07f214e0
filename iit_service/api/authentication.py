"""DRF's token authentication, its one query written out.

Every API request authenticates first. DRF's ``Token.objects.select_related("user").get(key=...)``
spends about 0.3 ms of Python building and compiling the same join on each request; the join below
is that query, written once, returning the same user row through the ORM's converters (iit_service.db;
``objects.raw`` cost another 0.15 ms matching columns to fields on every call). ``request.auth`` is a Token
carrying the key and the user, built without a second read: unlike DRF's it is not a loaded row (no
``created``; never save it).
Nothing here reads more; a token expiry check would have to select ``t.created`` too.
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
    def authenticate_credentials(self, key: str):
        users, sql = _token_user()
        with connection.cursor() as cursor:
            execute_prepared(cursor, sql, [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = users.instance(row)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, Token(key=key, user=user)
