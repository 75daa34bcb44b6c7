"""The τ²-bench airline environment: our own tools over its ``db.json``.

Tool names, arguments and semantics are τ²'s (``tau2.domains.airline.tools``),
rewritten over a copy-on-write view of the shared database so a fresh
environment per rollout costs nothing; the differential test
(``tests/environments/test_tau2_parity.py``) runs τ²'s own tools beside these on
every task's expected actions and perturbations of them and requires the same
successes and failures and the same changed records. As in τ², new ids come
from fixed lists and the clock is the policy's fixed "now", so replaying the
same calls always reaches the same state hash.
"""

from __future__ import annotations

import copy
from typing import Any

from environments.base import EnvError, method_tool as _t, obj
from environments.common_tools import CALCULATE, INT, STR, TRANSFER, s
from environments.tau2_data import Tau2Env

NOW = "2024-05-15T15:00:00"  # the policy's current time
# τ²'s new ids: fixed lists, the first one not yet taken (so replays and the benchmark agree on ids).
NEW_RESERVATION_IDS = ("HATHAT", "HATHAU", "HATHAV")
NEW_CERTIFICATE_IDS = tuple(f"certificate_{n}" for n in (3221322, 3221323, 3221324))
AIRPORTS = (("SFO", "San Francisco"), ("JFK", "New York"), ("LAX", "Los Angeles"), ("ORD", "Chicago"),
            ("DFW", "Dallas"), ("DEN", "Denver"), ("SEA", "Seattle"), ("ATL", "Atlanta"), ("MIA", "Miami"),
            ("BOS", "Boston"), ("PHX", "Phoenix"), ("IAH", "Houston"), ("LAS", "Las Vegas"), ("MCO", "Orlando"),
            ("EWR", "Newark"), ("CLT", "Charlotte"), ("MSP", "Minneapolis"), ("DTW", "Detroit"),
            ("PHL", "Philadelphia"), ("LGA", "LaGuardia"))  # τ²'s fixed list
CABINS = ["basic_economy", "economy", "business"]
FLIGHT = obj(flight_number=s("Such as 'HAT001'."), date=s("YYYY-MM-DD"))
PASSENGER = obj(first_name=STR, last_name=STR, dob=s("YYYY-MM-DD"))
PAYMENT = obj(payment_id=s("A payment method id from the user's profile."), amount=INT)


def _arr(item: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"type": "array", "items": item, "description": description}


class AirlineEnv(Tau2Env):
    name = "tau2-airline"
    domain = "airline"

    # -- lookups ----------------------------------------------------------
    def _user(self, user_id: str) -> dict[str, Any]:
        if (user := self.db.get("users", user_id)) is None:
            raise EnvError(f"User {user_id} not found")
        return user

    def _reservation(self, reservation_id: str) -> dict[str, Any]:
        if self.db.get("reservations", reservation_id) is None:
            raise EnvError(f"Reservation {reservation_id} not found")
        return self.db.get("reservations", reservation_id)

    def _flight_date(self, number: str, date: str) -> tuple[dict[str, Any], dict[str, Any]]:
        flight = self.db.get("flights", number)
        if flight is None:
            raise EnvError(f"Flight {number} not found")
        if date not in flight["dates"]:
            raise EnvError(f"Flight {number} not found on date {date}")
        return flight, flight["dates"][date]

    # -- read tools -------------------------------------------------------
    def get_user_details(self, user_id: str) -> Any:
        return self._user(user_id)

    def get_reservation_details(self, reservation_id: str) -> Any:
        return self._reservation(reservation_id)

    def _search_direct(self, date: str, origin: str | None = None, destination: str | None = None,
                       leave_after: str | None = None) -> list[dict[str, Any]]:
        out = []
        for number in self.db.keys("flights"):
            flight = self.db.get("flights", number)
            day = flight["dates"].get(date)
            if ((origin is None or flight["origin"] == origin) and (destination is None or flight["destination"] == destination)
                    and day and day["status"] == "available"
                    and (leave_after is None or flight["scheduled_departure_time_est"] >= leave_after)):
                out.append({"flight_number": number, "origin": flight["origin"], "destination": flight["destination"],
                            "status": "available", "scheduled_departure_time_est": flight["scheduled_departure_time_est"],
                            "scheduled_arrival_time_est": flight["scheduled_arrival_time_est"], "date": None,
                            "available_seats": day["available_seats"], "prices": day["prices"]})
        return out

    def search_direct_flight(self, origin: str, destination: str, date: str) -> Any:
        return self._search_direct(date, origin, destination)

    def search_onestop_flight(self, origin: str, destination: str, date: str) -> Any:
        out = []
        for first in self._search_direct(date, origin):
            first["date"] = date
            # τ²'s rule, kept as is: an arrival marked "+1" continues on the next day of May 2024
            date2 = f"2024-05-{int(date[-2:]) + 1}" if "+1" in first["scheduled_arrival_time_est"] else date
            for second in self._search_direct(date2, first["destination"], destination, first["scheduled_arrival_time_est"]):
                second["date"] = date2
                out.append([first, second])
        return out

    def list_all_airports(self) -> Any:
        return [{"iata": code, "city": city} for code, city in AIRPORTS]

    def get_flight_status(self, flight_number: str, date: str) -> Any:
        return self._flight_date(flight_number, date)[1]["status"]

    # -- write tools (τ²'s semantics, call for call: the differential test holds us to them) --
    def _new_reservation_id(self) -> str:
        for rid in NEW_RESERVATION_IDS:  # τ² assumes at most three bookings per task
            if self.db.get("reservations", rid) is None:
                return rid
        raise EnvError("Too many reservations")

    def _payment_for_update(self, user_id: str, payment_id: str, total: float) -> dict[str, Any] | None:
        """τ²'s rule for a change: no certificate; a gift card must cover the amount and is
        debited (a negative amount, a cheaper change, credits it back)."""
        method = self._user(user_id)["payment_methods"].get(payment_id)
        if method is None:
            raise EnvError("Payment method not found")
        if method["source"] == "certificate":
            raise EnvError("Certificate cannot be used to update reservation")
        if method["source"] == "gift_card" and method["amount"] < total:
            raise EnvError("Gift card balance is not enough")
        if method["source"] == "gift_card":
            self.db.mutable("users", user_id)["payment_methods"][payment_id]["amount"] -= total
        return {"payment_id": payment_id, "amount": total} if total != 0 else None

    def _available(self, number: str, date: str, cabin: str, seats: int) -> tuple[dict[str, Any], dict[str, Any]]:
        flight, day = self._flight_date(number, date)
        if day["status"] != "available":
            raise EnvError(f"Flight {number} not available on date {date}")
        if day["available_seats"][cabin] < seats:
            raise EnvError(f"Not enough seats on flight {number}")
        return flight, day

    def book_reservation(self, user_id: str, origin: str, destination: str, flight_type: str, cabin: str,
                         flights: list, passengers: list, payment_methods: list, total_baggages: int,
                         nonfree_baggages: int, insurance: str) -> Any:
        user = self._user(user_id)
        rid = self._new_reservation_id()
        # τ² builds pydantic records here: integer fields take 50.0 as 50 (the schema check let only
        # whole numbers through), so a float-written call reaches the same state as in τ².
        payment_methods = [{"payment_id": p["payment_id"], "amount": int(p["amount"])} for p in payment_methods]
        total_baggages, nonfree_baggages = int(total_baggages), int(nonfree_baggages)
        n = len(passengers)
        segments, total = [], 0
        for f in flights:
            flight, day = self._available(f["flight_number"], f["date"], cabin, n)
            segments.append({"origin": flight["origin"], "destination": flight["destination"],
                             "flight_number": f["flight_number"], "date": f["date"], "price": day["prices"][cabin]})
            total += day["prices"][cabin] * n
        total += 30 * n * (insurance == "yes") + 50 * nonfree_baggages
        for p in payment_methods:  # each method on its own covers its amount (as in τ²)
            method = user["payment_methods"].get(p["payment_id"])
            if method is None:
                raise EnvError(f"Payment method {p['payment_id']} not found")
            if method["source"] in ("gift_card", "certificate") and method["amount"] < p["amount"]:
                raise EnvError(f"Not enough balance in payment method {p['payment_id']}")
        paid = sum(p["amount"] for p in payment_methods)
        if paid != total:
            raise EnvError(f"Payment amount does not add up, total price is {total}, but paid {paid}")
        user = self.db.mutable("users", user_id)
        for p in payment_methods:
            method = user["payment_methods"].get(p["payment_id"])
            if method is not None and method["source"] == "gift_card":
                method["amount"] -= p["amount"]
            elif method is not None and method["source"] == "certificate":  # its remainder is not refunded
                del user["payment_methods"][p["payment_id"]]
        for seg in segments:
            self.db.mutable("flights", seg["flight_number"])["dates"][seg["date"]]["available_seats"][cabin] -= n
        reservation = {"reservation_id": rid, "user_id": user_id, "origin": origin, "destination": destination,
                       "flight_type": flight_type, "cabin": cabin, "flights": segments,
                       "passengers": [dict(p) for p in passengers],
                       "payment_history": [{"payment_id": p["payment_id"], "amount": p["amount"]} for p in payment_methods],
                       "created_at": NOW, "total_baggages": total_baggages, "nonfree_baggages": nonfree_baggages,
                       "insurance": insurance, "status": None}
        self.db.put("reservations", rid, reservation)
        user["reservations"].append(rid)
        return reservation

    def cancel_reservation(self, reservation_id: str) -> Any:
        """As τ²: every payment so far is reversed, refunds included, and seats are not
        released; cancelling twice therefore appends a second round of reversals."""
        self._reservation(reservation_id)
        res = self.db.mutable("reservations", reservation_id)
        res["payment_history"] += [{"payment_id": p["payment_id"], "amount": -p["amount"]} for p in res["payment_history"]]
        res["status"] = "cancelled"
        return res

    def update_reservation_baggages(self, reservation_id: str, total_baggages: int, nonfree_baggages: int,
                                    payment_id: str) -> Any:
        res = self._reservation(reservation_id)
        self._user(res["user_id"])
        cost = 50 * max(0, nonfree_baggages - res["nonfree_baggages"])
        payment = self._payment_for_update(res["user_id"], payment_id, cost)
        res = self.db.mutable("reservations", reservation_id)
        if payment is not None:
            res["payment_history"].append(payment)
        res["total_baggages"], res["nonfree_baggages"] = total_baggages, nonfree_baggages
        return res

    def update_reservation_flights(self, reservation_id: str, cabin: str, flights: list, payment_id: str) -> Any:
        res = self._reservation(reservation_id)
        self._user(res["user_id"])
        n = len(res["passengers"])
        segments, total = [], 0
        for f in flights:
            kept = next((x for x in res["flights"] if x["flight_number"] == f["flight_number"]
                         and x["date"] == f["date"] and cabin == res["cabin"]), None)
            if kept is not None:  # a kept segment keeps the price paid
                segments.append(copy.deepcopy(kept))
                total += kept["price"] * n
                continue
            flight, day = self._available(f["flight_number"], f["date"], cabin, n)
            segments.append({"flight_number": f["flight_number"], "date": f["date"], "price": day["prices"][cabin],
                             "origin": flight["origin"], "destination": flight["destination"]})
            total += day["prices"][cabin] * n
        total -= sum(x["price"] for x in res["flights"]) * n
        payment = self._payment_for_update(res["user_id"], payment_id, total)
        res = self.db.mutable("reservations", reservation_id)
        if payment is not None:
            res["payment_history"].append(payment)
        res["flights"], res["cabin"] = segments, cabin  # seats are not moved (as in τ²)
        return res

    def update_reservation_passengers(self, reservation_id: str, passengers: list) -> Any:
        if len(passengers) != len(self._reservation(reservation_id)["passengers"]):
            raise EnvError("Number of passengers does not match")
        res = self.db.mutable("reservations", reservation_id)
        res["passengers"] = [dict(p) for p in passengers]
        return res

    def send_certificate(self, user_id: str, amount: int) -> Any:
        self._user(user_id)
        for cid in NEW_CERTIFICATE_IDS:  # τ² assumes at most three per task
            if cid not in self._user(user_id)["payment_methods"]:
                user = self.db.mutable("users", user_id)
                # τ²'s Certificate model holds a float amount (50 is stored as 50.0)
                user["payment_methods"][cid] = {"source": "certificate", "id": cid, "amount": float(amount)}
                return f"Certificate {cid} added to user {user_id} with amount {amount}."
        raise EnvError("Too many certificates")

TOOLS = [
    _t("get_user_details", "Get the details of a user, including their reservations.", obj(user_id=s("Such as 'sara_doe_496'."))),
    _t("get_reservation_details", "Get the details of a reservation.", obj(reservation_id=s("Such as '8JX2WO'."))),
    _t("search_direct_flight", "Search direct flights between two cities on a date.",
       obj(origin=s("IATA code such as 'JFK'."), destination=s("IATA code such as 'LAX'."), date=s("YYYY-MM-DD"))),
    _t("search_onestop_flight", "Search one-stop flights between two cities on a date.",
       obj(origin=s("IATA code such as 'JFK'."), destination=s("IATA code such as 'LAX'."), date=s("YYYY-MM-DD"))),
    _t("list_all_airports", "List the IATA codes of all airports.", obj()),
    _t("get_flight_status", "Get the status of a flight on a date.", obj(flight_number=STR, date=s("YYYY-MM-DD"))),
    CALCULATE,
    TRANSFER,
    _t("book_reservation", "Book a reservation. Payments must add up to the total price.",
       obj(user_id=STR, origin=STR, destination=STR, flight_type={"type": "string", "enum": ["one_way", "round_trip"]},
           cabin={"type": "string", "enum": CABINS}, flights=_arr(FLIGHT, "Every flight segment."),
           passengers=_arr(PASSENGER), payment_methods=_arr(PAYMENT), total_baggages=INT, nonfree_baggages=INT,
           insurance={"type": "string", "enum": ["yes", "no"]}), writes=True),
    _t("cancel_reservation", "Cancel the whole reservation.", obj(reservation_id=STR), writes=True),
    _t("update_reservation_baggages", "Update the baggage information of a reservation.",
       obj(reservation_id=STR, total_baggages=INT, nonfree_baggages=INT, payment_id=STR), writes=True),
    _t("update_reservation_flights", "Update the flights (the ENTIRE new list of segments) and cabin of a reservation.",
       obj(reservation_id=STR, cabin={"type": "string", "enum": CABINS}, flights=_arr(FLIGHT), payment_id=STR), writes=True),
    _t("update_reservation_passengers", "Update the passengers of a reservation (same number of passengers).",
       obj(reservation_id=STR, passengers=_arr(PASSENGER)), writes=True),
    _t("send_certificate", "Send a travel certificate of an amount to a user as compensation.",
       obj(user_id=STR, amount=INT), writes=True),
]
AirlineEnv.tool_list = TOOLS
