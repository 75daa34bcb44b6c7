"""Single-turn function-calling tasks, judged by call matching (DESIGN.md's
``{"tools", "expected_calls"}`` verify format).

A small catalog of tools and templated requests, seeded: each request names the
calls it needs (one, or several in parallel), every argument has its list of
acceptable values, and arguments the request leaves open list ``None`` (may be
omitted). ``FC_TOOL_NAMES`` (disjoint from every environment's tool names) lets
the domain recognise a single-turn answer (see ``ToolUseDomain.is_final``).
"""

from __future__ import annotations

import random
from typing import Any, Iterator


def _fn(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": props, "required": required}}}


CATALOG = {
    "get_weather": _fn("get_weather", "Current weather in a city.", {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city"]),
    "convert_currency": _fn("convert_currency", "Convert an amount of money between currencies.", {
        "amount": {"type": "number"}, "from_currency": {"type": "string", "description": "ISO code, e.g. USD"},
        "to_currency": {"type": "string", "description": "ISO code, e.g. EUR"}}, ["amount", "from_currency", "to_currency"]),
    "set_timer": _fn("set_timer", "Start a countdown timer.", {
        "minutes": {"type": "integer"}, "label": {"type": "string"}}, ["minutes"]),
    "send_email": _fn("send_email", "Send an email.", {
        "to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}}, ["to", "subject", "body"]),
    "get_stock_price": _fn("get_stock_price", "Latest price of a stock by ticker symbol.", {
        "symbol": {"type": "string"}}, ["symbol"]),
}
FC_TOOL_NAMES = frozenset(CATALOG)

_CITIES = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Denver", "Seoul"]
_CURRENCIES = [("dollars", "USD"), ("euros", "EUR"), ("yen", "JPY"), ("pounds", "GBP")]
_STOCKS = [("Apple", "AAPL"), ("Microsoft", "MSFT"), ("Nvidia", "NVDA"), ("Tesla", "TSLA")]
_PEOPLE = ["ana@example.com", "bo@example.com", "chen@example.com"]


def _weather(rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    city = rng.choice(_CITIES)
    if rng.random() < 0.5:
        unit = rng.choice(["celsius", "fahrenheit"])
        return f"What's the weather in {city} in {unit}?", [{"name": "get_weather", "arguments": {"city": [city], "unit": [unit]}}]
    return f"How is the weather in {city} right now?", [{"name": "get_weather", "arguments": {"city": [city], "unit": [None, "celsius", "fahrenheit"]}}]


def _currency(rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    amount = rng.choice([5, 20, 75, 120, 1000])
    (a_word, a), (b_word, b) = rng.sample(_CURRENCIES, 2)
    return (f"Convert {amount} {a_word} to {b_word}.",
            [{"name": "convert_currency", "arguments": {"amount": [amount], "from_currency": [a], "to_currency": [b]}}])


def _timer(rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    minutes = rng.choice([3, 10, 25, 45])
    if rng.random() < 0.5:
        label = rng.choice(["tea", "pasta", "laundry"])
        return f"Set a {minutes} minute timer called {label}.", [{"name": "set_timer", "arguments": {"minutes": [minutes], "label": [label]}}]
    return f"Start a timer for {minutes} minutes.", [{"name": "set_timer", "arguments": {"minutes": [minutes], "label": [None, ""]}}]


def _email(rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    to = rng.choice(_PEOPLE)
    subject = rng.choice(["Lunch", "Report", "Tickets"])
    body = rng.choice(["See you at noon.", "The report is done.", "I booked the tickets."])
    return (f"Email {to} with the subject '{subject}' and the text '{body}'.",
            [{"name": "send_email", "arguments": {"to": [to], "subject": [subject], "body": [body]}}])


def _stocks_parallel(rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    picks = rng.sample(_STOCKS, 2)
    names = " and ".join(n for n, _ in picks)
    return (f"Give me the current stock prices of {names}.",
            [{"name": "get_stock_price", "arguments": {"symbol": [sym]}} for _, sym in picks])


def _weather_parallel(rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    cities = rng.sample(_CITIES, 2)
    return (f"What's the weather in {cities[0]} and in {cities[1]}, in celsius?",
            [{"name": "get_weather", "arguments": {"city": [c], "unit": ["celsius"]}} for c in cities])


TEMPLATES = [_weather, _currency, _timer, _email, _stocks_parallel, _weather_parallel]


def fc_tasks(seed: int) -> Iterator[dict[str, Any]]:
    """Endless deterministic rows ``{"index", "question", "tools", "expected_calls"}``; each
    request sees its own tools plus two distractors."""
    index = 0
    while True:
        rng = random.Random(f"fc:{seed}:{index}")
        question, expected = rng.choice(TEMPLATES)(rng)
        needed = {c["name"] for c in expected}
        others = sorted(FC_TOOL_NAMES - needed)
        names = sorted(needed | set(rng.sample(others, 2)))
        yield {"index": index, "question": question, "tools": [CATALOG[n] for n in names], "expected_calls": expected}
        index += 1
