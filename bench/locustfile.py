"""The load test's users (Locust): agents at many sites searching, booking, reading,
cancelling and rescheduling through the reverse proxy, at a fixed total rate.

Run by ``bench/load.py`` (``make load``), which builds the database, the servers and nginx
and passes ``--agents-file`` (the agents: e-mail and site), ``--total-rate`` (requests per
second, all users together) and ``--status-file`` (where the statuses and exact latencies of
every request are written at the end). The mix, by task weight: slot searches 70 %,
bookings 10 %, reads 15 % (one appointment, or the site's list), cancels and reschedules
5 %. A refusal the API documents for a race between agents (409 slot taken, 412 changed
meanwhile) is an answer, not an error; any 5xx, unexpected 4xx or transport error is one.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from locust import HttpUser, constant_pacing, events, task

THEMES = ("famille", "sante", "emploi", "retraite", "fiscalite", "droit", "autonomie")
#: Answers a race between agents may give: counted apart, not as errors.
RACES = {"book": (409, 422), "cancel": (409, 412), "reschedule": (409, 412, 422)}
SEARCH_DAYS = 14

_agents: list[dict[str, str]] = []
_next_agent = count()
#: Per request name: status -> count, and the latencies (ms) of every answer.
STATUSES: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
LATENCIES: dict[str, list[float]] = defaultdict(list)


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--agents-file", default="",
                        help="JSON list of {email, site_id, token}: logged in beforehand")
    parser.add_argument("--total-rate", type=float, default=20.0,
                        help="requests per second, all users together")
    parser.add_argument("--status-file", default="", help="where to write the statuses")


@events.test_start.add_listener
def _load_agents(environment: Any, **_: Any) -> None:
    with open(environment.parsed_options.agents_file, encoding="utf-8") as file:
        _agents.extend(json.load(file))


@events.request.add_listener
def _record(name: str, response_time: float, response: Any, exception: Any,
            **_: Any) -> None:
    status = getattr(response, "status_code", 0) if response is not None else 0
    key = str(status) if status else f"error {type(exception).__name__}"
    if status == 422 and "not-bookable" in (response.text or ""):
        key = "422 not-bookable"  # the slot went to another agent meanwhile: a race
    STATUSES[name][key] += 1
    if status:
        LATENCIES[name].append(response_time)


@events.quitting.add_listener
def _write(environment: Any, **_: Any) -> None:
    path = environment.parsed_options.status_file
    if path:
        with open(path, "w", encoding="utf-8") as file:
            json.dump({"statuses": STATUSES, "latencies": LATENCIES}, file)


def _race(kind: str, answer: Any) -> bool:
    """A refusal documented for two agents racing (a 422 only when not bookable)."""
    if answer.status_code == 422:
        return kind in ("book", "reschedule") and "not-bookable" in (answer.text or "")
    return bool(answer.status_code in RACES[kind])


class Agent(HttpUser):
    """An agent at one site, on its own keep-alive connection."""

    def wait_time(self) -> float:
        options = self.environment.parsed_options
        if not hasattr(self, "_pacing"):
            per_user = options.total_rate / max(1, options.num_users)
            self._pacing = constant_pacing(1 / per_user)
        return float(self._pacing(self))

    def on_start(self) -> None:
        agent = _agents[next(_next_agent) % len(_agents)]
        self.site_id = agent["site_id"]
        self.slots: dict[str, list[dict[str, Any]]] = {}  # service id -> free slots seen
        self.mine: dict[str, tuple[str, str]] = {}  # appointment id -> (ETag, service id)
        self.client.headers["Authorization"] = f"Bearer {agent['token']}"

    def _window(self) -> dict[str, str]:
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start += timedelta(days=1)
        return {"from": start.isoformat(), "to": (start + timedelta(days=SEARCH_DAYS)).isoformat()}

    @task(70)
    def search(self) -> None:
        params = {"site_id": self.site_id, "theme": random.choice(THEMES), **self._window()}
        with self.client.get("/api/v1/slots", params=params, name="search",
                             catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"search {answer.status_code}")
                return
            found: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for item in answer.json()["items"]:
                found[item["service_id"]].append(item)
            self.slots.update(found)

    @task(10)
    def book(self) -> None:
        services = [service for service, slots in self.slots.items() if slots]
        if not services:
            self.search()
            return
        slots = self.slots[random.choice(services)]
        slot = slots.pop(random.randrange(len(slots)))
        body = {"site_id": self.site_id, "start": slot["start"], "service_id": slot["service_id"],
                "staff_id": slot["staff_id"], "stop_id": slot["stop_id"],
                "usager": {"first_name": "Camille", "language": "fr",
                           "last_name": f"Charge {uuid.uuid4().hex[:8]}"}}
        with self.client.post("/api/v1/appointments", json=body, name="book",
                              headers={"Idempotency-Key": uuid.uuid4().hex},
                              catch_response=True) as answer:
            if answer.status_code == 201:
                self.mine[answer.json()["id"]] = (answer.headers["ETag"], slot["service_id"])
            elif _race("book", answer):
                answer.success()
            else:
                answer.failure(f"book {answer.status_code}")

    @task(15)
    def read(self) -> None:
        if self.mine and random.random() < 0.6:
            appointment = random.choice(list(self.mine))
            with self.client.get(f"/api/v1/appointments/{appointment}", name="read one",
                                 catch_response=True) as answer:
                if answer.status_code == 200:
                    self.mine[appointment] = (answer.headers["ETag"], self.mine[appointment][1])
                else:
                    answer.failure(f"read {answer.status_code}")
            return
        params = {"site_id": self.site_id, "limit": "50", **self._window()}
        with self.client.get("/api/v1/appointments", params=params, name="read list",
                             catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"list {answer.status_code}")

    @task(5)
    def change(self) -> None:
        if not self.mine:
            self.read()
            return
        appointment = random.choice(list(self.mine))
        etag, service = self.mine.pop(appointment)
        slots = self.slots.get(service)
        if slots and random.random() < 0.5:
            self._reschedule(appointment, etag, service, slots.pop(random.randrange(len(slots))))
            return
        with self.client.post(f"/api/v1/appointments/{appointment}/cancel", name="cancel",
                              json={"reason": "load test"}, headers={"If-Match": etag},
                              catch_response=True) as answer:
            if _race("cancel", answer):
                answer.success()
            elif answer.status_code != 200:
                answer.failure(f"cancel {answer.status_code}")

    def _reschedule(self, appointment: str, etag: str, service: str,
                    slot: dict[str, Any]) -> None:
        body = {"start": slot["start"], "staff_id": slot["staff_id"]}
        with self.client.post(f"/api/v1/appointments/{appointment}/reschedule",
                              name="reschedule", json=body, headers={"If-Match": etag},
                              catch_response=True) as answer:
            if answer.status_code == 200:
                self.mine[appointment] = (answer.headers["ETag"], service)
            elif _race("reschedule", answer):
                answer.success()
            else:
                answer.failure(f"reschedule {answer.status_code}")
