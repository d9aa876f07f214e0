"""The per-user request rate as a counter per time window, counted after the response.

DRF's UserRateThrottle keeps the time of every request in the window in one cache entry that each
request reads and writes back whole: at the default 6,000/min a busy user's entry is a list of
thousands of floats, pickled and sent to Redis and back twice per request. A counter per window is
one atomic increment of a few bytes. The price is the usual one of fixed windows: a burst that
straddles two windows may reach up to twice the rate for a moment, which a safety limit tolerates.

Every request is still counted in the shared cache, but the increment is sent once the response has
gone (iit_service.after_response), and a request is judged by the count the cache returned to this
worker for the user's previous request in the window. A request no longer waits on a round trip to
Redis (about 0.4 ms of an idle machine's time, on every API request). The price: a user is refused as
soon as this worker has heard that the limit is reached, so past it a few requests more may pass, at
most one per worker (per worker thread, with GUNICORN_THREADS) that has not yet heard. In one process
and thread (Django's test client) the count is exact, as before.
The login rate keeps DRF's exact sliding window (ScopedRateThrottle): it is small and guards passwords.
"""

from __future__ import annotations

from rest_framework.throttling import UserRateThrottle

from iit_service.after_response import after_response


class UserWindowThrottle(UserRateThrottle):
    # What the cache last answered this worker for each throttle key, for the current window only.
    _heard: dict[str, int] = {}
    _heard_window: int | None = None

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        heard = self._heard_in(window)
        key = f"{self.key}:{window}"
        earlier = heard.get(key, 0)  # this worker's latest word on the requests before this one
        after_response(lambda: self._count(key, heard))
        return earlier < self.num_requests

    def _count(self, key: str, heard: dict[str, int]) -> None:
        try:
            count = self.cache.incr(key)  # one round trip for all but a window's first request
        except ValueError:  # no entry yet: this is the window's first request, unless another one just made it
            count = 1 if self.cache.add(key, 1, self.duration + 1) else self.cache.incr(key)
        # None: the cache is down and ignores errors (DJANGO_REDIS_IGNORE_EXCEPTIONS); requests go on unthrottled.
        if count is not None:
            heard[key] = count

    @classmethod
    def forget(cls) -> None:
        """Drop what this worker heard: the counters it heard of are gone (a cleared cache)."""
        cls._heard, cls._heard_window = {}, None

    @classmethod
    def _heard_in(cls, window: int) -> dict[str, int]:
        if cls._heard_window != window:  # a new window: what was heard of the last one no longer matters
            cls._heard, cls._heard_window = {}, window
        return cls._heard

    def wait(self) -> float:
        return max(self.window_ends - self.now, 1.0)
