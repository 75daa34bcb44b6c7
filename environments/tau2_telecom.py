"""The τ²-bench telecom environment, agent side: our own tools over its ``db.toml``.

τ² telecom is a *dual-control* domain: the agent works on the carrier's
database (customers, lines, plans, bills) while the user works on a simulated
phone (airplane mode, APN settings, SIM, roaming switch, speed test). τ²
judges most telecom tasks by assertions on that phone. This module builds the
agent half only: the 13 agent tools, the database, the tasks' agent-side
initialisation (``disable_roaming``, ``set_data_usage``, ``enable_roaming``,
``suspend_line_for_overdue_bill``) and the agent-side expected actions. The
phone (τ²'s ``user_tools``: ~30 device functions with a network model behind
them) is not simulated, so the user cannot run device actions and the state
check covers the database only. ``tasks()`` therefore keeps the tasks whose
expected actions include an agent-side database write (refuel, roaming,
payment request, resume line): for them the database check is meaningful.
"""

from __future__ import annotations

import datetime
import tomllib
from typing import Any

from environments.base import EnvError, EnvTool, method_tool, obj
from environments.common_tools import NUM, STR, TRANSFER, s
from environments.tau2_data import _LOCK, Tau2Env, _read, tasks as tau2_tasks

TODAY = datetime.date(2025, 2, 25)  # τ² telecom's fixed "today"
TABLES = {"customers": "customer_id", "lines": "line_id", "plans": "plan_id", "devices": "device_id", "bills": "bill_id"}
WRITES = {"suspend_line", "resume_line", "send_payment_request", "enable_roaming", "disable_roaming", "refuel_data"}
# Agent-side helpers τ² tasks run while setting up (never offered to the model).
INIT_HELPERS = {"disable_roaming", "enable_roaming", "set_data_usage", "suspend_line_for_overdue_bill"}
_DB: dict[str, dict[str, Any]] | None = None


def base_db() -> dict[str, dict[str, Any]]:
    """``db.toml`` as tables keyed by id (parsed once per process, never mutated)."""
    global _DB
    with _LOCK:
        if _DB is None:
            raw = tomllib.loads(_read("telecom", "db.toml"))
            _DB = {table: {row[key]: _jsonable(row) for row in raw.get(table, [])} for table, key in TABLES.items()}
        return _DB


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def tasks() -> list[dict[str, Any]]:
    """τ² telecom tasks whose expected actions hold an agent-side database write."""
    out = []
    for row in tau2_tasks("telecom"):
        actions = (row.get("evaluation_criteria") or {}).get("actions") or []
        if any(a.get("requestor", "assistant") == "assistant" and a["name"] in WRITES for a in actions):
            out.append(row)
    return out


def agent_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": a["name"], "arguments": a.get("arguments") or {}} for a in actions or []
            if a.get("requestor", a.get("env_type", "assistant")) == "assistant"]


def init_actions(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The agent-side (database) part of a task's initialisation."""
    init = (row.get("initial_state") or {}).get("initialization_actions") or []
    return [{"name": a["func_name"], "arguments": a.get("arguments") or {}} for a in init
            if a.get("env_type") == "assistant"]


class TelecomEnv(Tau2Env):
    """Spec: ``{"init": [{"name", "arguments"}]}`` (agent-side initialisation actions)."""

    name = "tau2-telecom"
    domain = "telecom"

    def base(self) -> dict[str, dict[str, Any]]:
        return base_db()  # db.toml, not db.json

    def reset(self) -> None:
        super().reset()
        for action in self.spec.get("init") or []:
            if action["name"] not in INIT_HELPERS:
                raise ValueError(f"unknown telecom initialisation action {action['name']!r}")
            getattr(self, action["name"])(**action["arguments"])

    # -- lookups ----------------------------------------------------------
    def _get(self, table: str, key: str) -> dict[str, Any]:
        if not isinstance(key, str) or (record := self.db.get(table, key)) is None:
            raise EnvError(f"{table[:-1]} {key!r} not found")
        return record

    def _line_of(self, customer_id: str, line_id: str) -> dict[str, Any]:
        if line_id not in self._get("customers", customer_id)["line_ids"]:
            raise EnvError(f"line {line_id} not found for customer {customer_id}")
        return self.db.mutable("lines", line_id)

    def _customer_bills(self, customer_id: str) -> list[dict[str, Any]]:
        return [self._get("bills", b) for b in self._get("customers", customer_id)["bill_ids"]]

    # -- read tools -------------------------------------------------------
    def get_customer_by_phone(self, phone_number: str) -> dict[str, Any]:
        for cid in self.db.keys("customers"):
            customer = self.db.get("customers", cid)
            if customer["phone_number"] == phone_number or any(
                    self._get("lines", lid)["phone_number"] == phone_number for lid in customer["line_ids"]):
                return customer
        raise EnvError(f"customer with phone number {phone_number} not found")

    def get_customer_by_id(self, customer_id: str) -> dict[str, Any]:
        return self._get("customers", customer_id)

    def get_customer_by_name(self, full_name: str, dob: str) -> list[dict[str, Any]]:
        return [c for c in (self.db.get("customers", k) for k in self.db.keys("customers"))
                if c["full_name"].lower() == full_name.lower() and c["date_of_birth"] == dob]

    def get_details_by_id(self, id: str) -> dict[str, Any]:
        table = {"L": "lines", "D": "devices", "B": "bills", "C": "customers", "P": "plans"}.get(id[:1])
        if table is None:
            raise EnvError(f"unknown id format {id!r} (ids start with C, L, D, B or P)")
        return self._get(table, id)

    def get_bills_for_customer(self, customer_id: str, limit: int = 12) -> list[dict[str, Any]]:
        return sorted(self._customer_bills(customer_id), key=lambda b: b["issue_date"], reverse=True)[:max(limit, 0)]

    def get_data_usage(self, customer_id: str, line_id: str) -> dict[str, Any]:
        line = self._get("lines", line_id) if line_id in self._get("customers", customer_id)["line_ids"] else None
        if line is None:
            raise EnvError(f"line {line_id} not found for customer {customer_id}")
        plan = self._get("plans", line["plan_id"])
        return {"line_id": line_id, "data_used_gb": line["data_used_gb"], "data_limit_gb": plan["data_limit_gb"],
                "data_refueling_gb": line.get("data_refueling_gb", 0.0), "cycle_end_date": "2025-02-28"}

    # -- write tools ------------------------------------------------------
    def suspend_line(self, customer_id: str, line_id: str, reason: str) -> dict[str, Any]:
        line = self._line_of(customer_id, line_id)
        if line["status"] != "Active":
            raise EnvError("line must be active to suspend")
        line.update(status="Suspended", suspension_start_date=TODAY.isoformat())
        return {"message": "Line suspended successfully. $5/month holding fee will apply.", "line": line}

    def resume_line(self, customer_id: str, line_id: str) -> dict[str, Any]:
        line = self._line_of(customer_id, line_id)
        if line["status"] not in ("Suspended", "Pending Activation"):
            raise EnvError("line must be suspended to resume")
        line.update(status="Active", suspension_start_date=None)
        return {"message": "Line resumed successfully", "line": line}

    def send_payment_request(self, customer_id: str, bill_id: str) -> str:
        if any(b["status"] == "Awaiting Payment" for b in self._customer_bills(customer_id)):
            raise EnvError("a bill is already awaiting payment for this customer")
        if bill_id not in self._get("customers", customer_id)["bill_ids"]:
            raise EnvError(f"bill {bill_id} not found for customer {customer_id}")
        self.db.mutable("bills", bill_id)["status"] = "Awaiting Payment"
        return f"Payment request sent to the customer for bill {bill_id}"

    def enable_roaming(self, customer_id: str, line_id: str) -> str:
        line = self._line_of(customer_id, line_id)
        if line.get("roaming_enabled"):
            return "Roaming was already enabled"
        line["roaming_enabled"] = True
        return "Roaming enabled successfully"

    def disable_roaming(self, customer_id: str, line_id: str) -> str:
        line = self._line_of(customer_id, line_id)
        if not line.get("roaming_enabled"):
            return "Roaming was already disabled"
        line["roaming_enabled"] = False
        return "Roaming disabled successfully"

    def refuel_data(self, customer_id: str, line_id: str, gb_amount: float) -> dict[str, Any]:
        line = self._line_of(customer_id, line_id)
        gb_amount = float(gb_amount)  # 2 and 2.0 are the same request (and the same state)
        if gb_amount <= 0:
            raise EnvError("refuel amount must be positive")
        price = self._get("plans", line["plan_id"])["data_refueling_price_per_gb"]
        charge = gb_amount * price
        line["data_refueling_gb"] = line.get("data_refueling_gb", 0.0) + gb_amount
        self._charge(customer_id, charge, f"Data refueling: {gb_amount} GB at ${price}/GB")
        return {"message": f"Successfully added {gb_amount} GB of data for line {line_id} for ${charge:.2f}",
                "new_data_refueling_gb": line["data_refueling_gb"], "charge": charge}

    def _charge(self, customer_id: str, amount: float, description: str) -> None:
        """Add a line item to the customer's draft bill (a deterministic new one if none)."""
        customer = self._get("customers", customer_id)
        draft = next((b for b in self._customer_bills(customer_id) if b["status"] == "Draft"), None)
        if draft is None:
            bill_id = f"B{customer_id}-next"
            draft = {"bill_id": bill_id, "customer_id": customer_id, "period_start": "2025-03-01",
                     "period_end": "2025-03-31", "issue_date": "2025-03-01", "total_due": 0.0,
                     "due_date": "2025-03-15", "line_items": [], "status": "Draft"}
            self.db.put("bills", bill_id, draft)
            self.db.mutable("customers", customer_id)["bill_ids"] = [*customer["bill_ids"], bill_id]
        draft = self.db.mutable("bills", draft["bill_id"])
        draft["line_items"] = [*draft["line_items"], {"description": description, "amount": amount,
                                                      "date": TODAY.isoformat(), "item_type": "Credit" if amount < 0 else "Charge"}]
        draft["total_due"] = draft["total_due"] + amount

    # -- initialisation helpers (τ²'s "break" functions; not tools) -------
    def set_data_usage(self, customer_id: str, line_id: str, data_used_gb: float) -> str:
        self._line_of(customer_id, line_id)["data_used_gb"] = float(data_used_gb)
        return f"Data usage set to {data_used_gb} GB for line {line_id}"

    def suspend_line_for_overdue_bill(self, customer_id: str, line_id: str, new_bill_id: str, contract_ended: bool) -> str:
        line = self._line_of(customer_id, line_id)
        if line["status"] != "Active":
            raise ValueError("line must be active to suspend for an unpaid bill")
        if any(b["status"] == "Overdue" for b in self._customer_bills(customer_id)):
            raise ValueError("customer already has an overdue bill")
        amount = self._get("plans", line["plan_id"])["price_per_month"]
        self.db.put("bills", new_bill_id, {
            "bill_id": new_bill_id, "customer_id": customer_id, "period_start": "2025-01-01", "period_end": "2025-01-31",
            "issue_date": "2025-01-01", "total_due": amount, "due_date": "2025-01-15", "status": "Overdue",
            "line_items": [{"description": f"Charge for line {line_id}", "amount": amount, "date": TODAY.isoformat(),
                            "item_type": "Charge"}]})
        customer = self.db.mutable("customers", customer_id)
        customer["bill_ids"] = [*customer["bill_ids"], new_bill_id]
        line.update(status="Suspended", suspension_start_date=TODAY.isoformat())
        if contract_ended:
            line["contract_end_date"] = "2025-01-31"
        return f"Line {line_id} suspended for unpaid bill {new_bill_id}. Contract ended: {contract_ended}"


def _t(name: str, description: str, parameters: dict[str, Any]) -> EnvTool:
    return method_tool(name, description, parameters, name in WRITES)


CID, LID = s("Customer id, e.g. C1001."), s("Line id, e.g. L1002.")
TelecomEnv.tool_list = [
    _t("get_customer_by_phone", "Find a customer by their contact or line phone number.", obj(phone_number=STR)),
    _t("get_customer_by_id", "Get a customer by id.", obj(customer_id=CID)),
    _t("get_customer_by_name", "Find customers by full name and date of birth (YYYY-MM-DD).",
       obj(full_name=STR, dob=s("YYYY-MM-DD"))),
    _t("get_details_by_id", "Details of a customer, line, device, bill or plan by its id (C.., L.., D.., B.., P..).",
       obj(id=STR)),
    _t("get_bills_for_customer", "A customer's bills, newest first.",
       obj(required=["customer_id"], customer_id=CID, limit={"type": "integer"})),
    _t("get_data_usage", "Data used, plan limit and refuelled data of a line this cycle.", obj(customer_id=CID, line_id=LID)),
    _t("suspend_line", "Suspend an active line (max 6 months).", obj(customer_id=CID, line_id=LID, reason=STR)),
    _t("resume_line", "Resume a suspended line.", obj(customer_id=CID, line_id=LID)),
    _t("send_payment_request", "Ask the customer to pay a bill (only one bill may await payment).",
       obj(customer_id=CID, bill_id=s("Bill id, e.g. B1001."))),
    _t("enable_roaming", "Enable international roaming on a line.", obj(customer_id=CID, line_id=LID)),
    _t("disable_roaming", "Disable international roaming on a line.", obj(customer_id=CID, line_id=LID)),
    _t("refuel_data", "Add data (GB) to a line; charged at the plan's refuelling price.",
       obj(customer_id=CID, line_id=LID, gb_amount=NUM)),
    TRANSFER,
]
