"""The per-user request rate as a counter per fixed window, in the shared cache.

DRF's UserRateThrottle keeps the time of every request in the window in one cache entry that each request
reads and writes back whole: at the default 6,000/min a busy user's entry is a list of up to 6,000 floats,
and two workers answering the same user at once each write back their own copy, so one of the two requests
goes uncounted. A counter per window is one atomic increment of a few bytes. The price is the usual one of
fixed windows: a burst that straddles two windows may reach up to twice the rate for a moment, which a
safety limit tolerates. The login rate keeps DRF's exact sliding window (ScopedRateThrottle): it is small
and guards passwords.
"""

from __future__ import annotations

from rest_framework.throttling import UserRateThrottle


class UserWindowThrottle(UserRateThrottle):
    num_requests: int  # set by DRF's SimpleRateThrottle from the rate
    duration: int

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        key = f"{self.key}:{window}"
        try:
            count = self.cache.incr(key)  # one round trip for all but a window's first request
        except ValueError:  # no counter yet: the window's first request, unless another one just made it
            count = 1 if self.cache.add(key, 1, self.duration + 1) else self.cache.incr(key)
        # None: the cache is down and ignores errors (DJANGO_REDIS_IGNORE_EXCEPTIONS); requests go on unthrottled.
        return count is None or count <= self.num_requests

    def wait(self) -> float:
        return max(self.window_ends - self.now, 1.0)
