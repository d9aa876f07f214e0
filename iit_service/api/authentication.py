"""DRF's token authentication, letting a view make its first read in the same statement as the token's.

A view whose every request starts with one read it can make together with the token look-up (the single
prediction: the scoped patient and their record) says so with ``read_with_token(key)``, which returns the
token's user, or ``None`` for an unknown key, and keeps what it read for its handler; ``NotImplemented``
where it does not (another action, another database). Every other request is DRF's own look-up. The
refusals are the same either way (an unknown key, an inactive user), and only then do DRF's permission and
throttle checks run. What the statement read for a caller who is then refused is dropped unseen; the read
is scoped to that user in the statement itself. It saves the single prediction a round trip and the ORM's
building of the token and patient queries. The price is that a request then throttled (429) has made that
read, not the token look-up alone. ``request.auth`` is then a Token carrying the key and the user, built
without a second read: unlike DRF's it is not a loaded row (no ``created``; never save it).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token


class TokenAuthentication(authentication.TokenAuthentication):
    view = None  # the view being authenticated for, when DRF says (its request's parser context)

    def authenticate(self, request):
        self.view = (getattr(request, "parser_context", None) or {}).get("view")
        return super().authenticate(request)

    def authenticate_credentials(self, key: str):
        read_with_token = getattr(self.view, "read_with_token", None)
        user = NotImplemented if read_with_token is None else read_with_token(key)
        if user is NotImplemented:
            return super().authenticate_credentials(key)
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, Token(key=key, user=user)
