"""The τ²-bench airline environment: our own tools over its ``db.json``.

Tool names and arguments follow τ²'s task files (so their expected actions
replay here); the implementations are ours. Writes are deterministic (new ids
are hashes of the state, the clock is the policy's fixed "now"), so replaying
the same calls always reaches the same state hash.
"""

from __future__ import annotations

from typing import Any

from environments.base import EnvError, method_tool as _t, obj
from environments.common_tools import CALCULATE, INT, STR, TRANSFER, s
from environments.tau2_data import Tau2Env, code_id, short_id

NOW = "2024-05-15T15:00:00"  # the policy's current time
CABINS = ["basic_economy", "economy", "business"]
FLIGHT = obj(flight_number=s("Such as 'HAT001'."), date=s("YYYY-MM-DD"))
PASSENGER = obj(first_name=STR, last_name=STR, dob=s("YYYY-MM-DD"))
PAYMENT = obj(payment_id=s("A payment method id from the user's profile."), amount={"type": "number"})


def _arr(item: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"type": "array", "items": item, "description": description}


class AirlineEnv(Tau2Env):
    name = "tau2-airline"
    domain = "airline"

    # -- lookups ----------------------------------------------------------
    def _user(self, user_id: str) -> dict[str, Any]:
        if (user := self.db.get("users", user_id)) is None:
            raise EnvError(f"user {user_id!r} not found")
        return user

    def _reservation(self, reservation_id: str) -> dict[str, Any]:
        if self.db.get("reservations", reservation_id) is None:
            raise EnvError(f"reservation {reservation_id!r} not found")
        return self.db.get("reservations", reservation_id)

    def _flight_date(self, number: str, date: str) -> tuple[dict[str, Any], dict[str, Any]]:
        flight = self.db.get("flights", number)
        if flight is None:
            raise EnvError(f"flight {number!r} not found")
        if date not in flight["dates"]:
            raise EnvError(f"flight {number} does not fly on {date}")
        return flight, flight["dates"][date]

    def _bookable(self, number: str, date: str, cabin: str, seats: int) -> tuple[dict[str, Any], int]:
        flight, day = self._flight_date(number, date)
        if day["status"] != "available":
            raise EnvError(f"flight {number} on {date} is not available for booking (status: {day['status']})")
        if day["available_seats"][cabin] < seats:
            raise EnvError(f"not enough {cabin} seats on flight {number} on {date}")
        return flight, day["prices"][cabin]

    def _charge(self, user_id: str, payment_id: str, amount: float, *, certificate_ok: bool) -> None:
        method = self._user(user_id)["payment_methods"].get(payment_id)
        if method is None:
            raise EnvError(f"payment method {payment_id!r} is not in the user's profile")
        if method["source"] == "certificate" and not certificate_ok:
            raise EnvError("a travel certificate cannot be used for this change")
        if method["source"] in ("gift_card", "certificate") and amount > method["amount"] + 1e-9:
            raise EnvError(f"{payment_id} balance {method['amount']} is not enough for {amount}")
        if amount and method["source"] == "gift_card":
            user = self.db.mutable("users", user_id)
            user["payment_methods"][payment_id]["amount"] = round(method["amount"] - amount, 2)
        elif method["source"] == "certificate":  # the remainder of a certificate is not refundable
            user = self.db.mutable("users", user_id)
            del user["payment_methods"][payment_id]

    # -- read tools -------------------------------------------------------
    def get_user_details(self, user_id: str) -> Any:
        return self._user(user_id)

    def get_reservation_details(self, reservation_id: str) -> Any:
        return self._reservation(reservation_id)

    def search_direct_flight(self, origin: str, destination: str, date: str) -> Any:
        out = []
        for number in self.db.keys("flights"):
            flight = self.db.get("flights", number)
            day = flight["dates"].get(date)
            if flight["origin"] == origin and flight["destination"] == destination and day and day["status"] == "available":
                out.append({k: flight[k] for k in ("flight_number", "origin", "destination",
                                                   "scheduled_departure_time_est", "scheduled_arrival_time_est")}
                           | {"date": date, "available_seats": day["available_seats"], "prices": day["prices"]})
        return out

    def search_onestop_flight(self, origin: str, destination: str, date: str) -> Any:
        out = []
        for first in self.search_direct_flight_from(origin, date):
            if first["destination"] == destination:
                continue
            for second in self.search_direct_flight(first["destination"], destination, date):
                if second["scheduled_departure_time_est"] > first["scheduled_arrival_time_est"]:
                    out.append([first, second])
        return out[:20]

    def search_direct_flight_from(self, origin: str, date: str) -> list[dict[str, Any]]:
        dests = {self.db.get("flights", n)["destination"] for n in self.db.keys("flights")
                 if self.db.get("flights", n)["origin"] == origin}
        return [f for d in sorted(dests) for f in self.search_direct_flight(origin, d, date)]

    def list_all_airports(self) -> Any:
        return sorted({self.db.get("flights", n)["origin"] for n in self.db.keys("flights")})

    def get_flight_status(self, flight_number: str, date: str) -> Any:
        return self._flight_date(flight_number, date)[1]["status"]

    # -- write tools ------------------------------------------------------
    def book_reservation(self, user_id: str, origin: str, destination: str, flight_type: str, cabin: str,
                         flights: list, passengers: list, payment_methods: list, total_baggages: int,
                         nonfree_baggages: int, insurance: str) -> Any:
        self._user(user_id)
        if not flights or not passengers:
            raise EnvError("a reservation needs at least one flight and one passenger")
        if len(passengers) > 5:
            raise EnvError("a reservation can have at most five passengers")
        segments, total = [], 0.0
        for f in flights:
            flight, price = self._bookable(f["flight_number"], f["date"], cabin, len(passengers))
            segments.append({"origin": flight["origin"], "destination": flight["destination"],
                             "flight_number": f["flight_number"], "date": f["date"], "price": price})
            total += price * len(passengers)
        total += 30 * len(passengers) * (insurance == "yes") + 50 * nonfree_baggages
        paid = sum(p["amount"] for p in payment_methods)
        if abs(paid - total) > 0.01:
            raise EnvError(f"payments add up to {paid}, but the reservation costs {total}")
        for p in payment_methods:
            self._charge(user_id, p["payment_id"], p["amount"], certificate_ok=True)
        for seg in segments:
            flight = self.db.mutable("flights", seg["flight_number"])
            flight["dates"][seg["date"]]["available_seats"][cabin] -= len(passengers)
        rid = code_id(user_id, self.db.size("reservations"), [x["flight_number"] for x in segments])
        reservation = {"reservation_id": rid, "user_id": user_id, "origin": origin, "destination": destination,
                       "flight_type": flight_type, "cabin": cabin, "flights": segments, "passengers": passengers,
                       "payment_history": [dict(p) for p in payment_methods], "created_at": NOW,
                       "total_baggages": total_baggages, "nonfree_baggages": nonfree_baggages, "insurance": insurance}
        self.db.put("reservations", rid, reservation)
        self.db.mutable("users", user_id)["reservations"].append(rid)
        return reservation

    def cancel_reservation(self, reservation_id: str) -> Any:
        if self._reservation(reservation_id).get("status") == "cancelled":
            raise EnvError(f"reservation {reservation_id} is already cancelled")
        res = self.db.mutable("reservations", reservation_id)
        res["payment_history"] += [{"payment_id": p["payment_id"], "amount": -p["amount"]} for p in res["payment_history"]]
        res["status"] = "cancelled"
        return res

    def update_reservation_baggages(self, reservation_id: str, total_baggages: int, nonfree_baggages: int,
                                    payment_id: str) -> Any:
        res = self._reservation(reservation_id)
        if total_baggages < res["total_baggages"]:
            raise EnvError("checked bags can be added but not removed")
        cost = 50 * max(0, nonfree_baggages - res["nonfree_baggages"])
        self._charge(res["user_id"], payment_id, cost, certificate_ok=False)
        res = self.db.mutable("reservations", reservation_id)
        if cost:
            res["payment_history"].append({"payment_id": payment_id, "amount": cost})
        res["total_baggages"], res["nonfree_baggages"] = total_baggages, nonfree_baggages
        return res

    def update_reservation_flights(self, reservation_id: str, cabin: str, flights: list, payment_id: str) -> Any:
        res = self._reservation(reservation_id)
        n = len(res["passengers"])
        old = {(f["flight_number"], f["date"]): f for f in res["flights"]}
        segments = []
        for f in flights:
            kept = old.get((f["flight_number"], f["date"]))
            if kept is not None and cabin == res["cabin"]:
                segments.append(dict(kept))  # a kept segment keeps the price paid
                continue
            flight, price = self._bookable(f["flight_number"], f["date"], cabin, n)
            segments.append({"origin": flight["origin"], "destination": flight["destination"],
                             "flight_number": f["flight_number"], "date": f["date"], "price": price})
        diff = (sum(x["price"] for x in segments) - sum(x["price"] for x in res["flights"])) * n
        self._charge(res["user_id"], payment_id, max(diff, 0), certificate_ok=False)
        res = self.db.mutable("reservations", reservation_id)
        if diff:
            res["payment_history"].append({"payment_id": payment_id, "amount": diff})
        res["flights"], res["cabin"] = segments, cabin
        return res

    def update_reservation_passengers(self, reservation_id: str, passengers: list) -> Any:
        if len(passengers) != len(self._reservation(reservation_id)["passengers"]):
            raise EnvError("the number of passengers cannot change")
        res = self.db.mutable("reservations", reservation_id)
        res["passengers"] = passengers
        return res

    def send_certificate(self, user_id: str, amount: int) -> Any:
        self._user(user_id)
        if amount <= 0:
            raise EnvError("the certificate amount must be positive")
        user = self.db.mutable("users", user_id)
        cid = short_id("certificate_", user_id, sorted(user["payment_methods"]), amount)
        user["payment_methods"][cid] = {"source": "certificate", "id": cid, "amount": float(amount)}
        return f"Certificate {cid} added to user {user_id} with amount {amount}."


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
