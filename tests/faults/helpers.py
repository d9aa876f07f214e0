"""Traffic helpers for the fault tests: a patient's prediction, a burst of them, and a steady background flow."""

from __future__ import annotations

import threading

from bench.common import http


def patient_ids(service: dict, count: int = 10) -> list[int]:
    status, body, _ = http(
        "GET", f"{service['web']}/api/v1/patients/?care_state=in_care&page_size={count}", token=service["token"]
    )
    assert status == 200, body
    return [row["id"] for row in body["results"]]


def predict(service: dict, pk: int, *, timeout: float = 30.0) -> tuple[int, object, float]:
    return http("POST", f"{service['web']}/api/v1/patients/{pk}/predictions/", token=service["token"], timeout=timeout)


def health(service: dict) -> tuple[int, dict]:
    status, body, _ = http("GET", f"{service['web']}/health", timeout=30)
    return status, body


class Traffic:
    """Predictions sent one after another from a thread until stopped; every answer is kept."""

    def __init__(self, service: dict, ids: list[int]):
        self.service, self.ids = service, ids
        self.answers: list[tuple[int, float]] = []
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self.running.set()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running.clear()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        n = 0
        while self.running.is_set() and n < 10_000:
            status, _, seconds = predict(self.service, self.ids[n % len(self.ids)])
            self.answers.append((status, seconds))
            n += 1
