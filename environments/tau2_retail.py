"""The τ²-bench retail environment: our own tools over its ``db.json``.

Tool names and arguments follow τ²'s task files so their expected actions
replay here; the rules enforced are the policy's hard ones (order status,
same-product exchanges, available items, payment methods on file, gift-card
balance). Deterministic, like every environment.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from environments.base import EnvError, method_tool as _t, obj
from environments.common_tools import CALCULATE, STR, STR_LIST, TRANSFER, s
from environments.tau2_data import Tau2Env

ADDRESS_FIELDS = ("address1", "address2", "city", "state", "country", "zip")
CANCEL_REASONS = ["no longer needed", "ordered by mistake"]


class RetailEnv(Tau2Env):
    name = "tau2-retail"
    domain = "retail"

    # -- lookups ----------------------------------------------------------
    def _get(self, table: str, key: str, what: str) -> dict[str, Any]:
        if (record := self.db.get(table, key)) is None:
            raise EnvError(f"{what} {key!r} not found")
        return record

    def _order(self, order_id: str, *statuses: str) -> dict[str, Any]:
        order = self._get("orders", order_id, "order")
        if statuses and order["status"] not in statuses:
            raise EnvError(f"order {order_id} is {order['status']!r}; this needs status {' or '.join(statuses)}")
        return order

    def _payment(self, user_id: str, payment_method_id: str) -> dict[str, Any]:
        method = self._get("users", user_id, "user")["payment_methods"].get(payment_method_id)
        if method is None:
            raise EnvError(f"payment method {payment_method_id!r} is not in the user's profile")
        return method

    def _pay(self, user_id: str, payment_method_id: str, amount: float) -> None:
        """Charge (amount > 0) or refund (amount < 0) a method; gift cards move balance now."""
        method = self._payment(user_id, payment_method_id)
        if method["source"] == "gift_card":
            if amount > method["balance"] + 1e-9:
                raise EnvError(f"gift card balance {method['balance']} does not cover {round(amount, 2)}")
            user = self.db.mutable("users", user_id)
            user["payment_methods"][payment_method_id]["balance"] = round(method["balance"] - amount, 2)

    def _swap_items(self, order: dict[str, Any], item_ids: list[str], new_item_ids: list[str]) -> float:
        """Checks a same-product swap; returns the price difference (new - old)."""
        if not item_ids or len(item_ids) != len(new_item_ids):
            raise EnvError("item_ids and new_item_ids must be non-empty and of the same length")
        have = Counter(i["item_id"] for i in order["items"])
        if Counter(item_ids) - have:
            raise EnvError(f"item(s) {sorted(Counter(item_ids) - have)} are not in order {order['order_id']}")
        diff = 0.0
        for old_id, new_id in zip(item_ids, new_item_ids):
            item = next(i for i in order["items"] if i["item_id"] == old_id)
            variant = self._get("products", item["product_id"], "product")["variants"].get(new_id)
            if variant is None:
                raise EnvError(f"new item {new_id} is not a variant of product {item['product_id']} ({item['name']})")
            if not variant["available"]:
                raise EnvError(f"new item {new_id} is not available")
            diff += variant["price"] - item["price"]
        return round(diff, 2)

    # -- read tools -------------------------------------------------------
    def find_user_id_by_email(self, email: str) -> str:
        for uid in self.db.keys("users"):
            if self.db.get("users", uid)["email"].lower() == email.strip().lower():
                return uid
        raise EnvError("user not found")

    def find_user_id_by_name_zip(self, first_name: str, last_name: str, zip: str) -> str:
        for uid in self.db.keys("users"):
            user = self.db.get("users", uid)
            name = user["name"]
            if (name["first_name"].lower(), name["last_name"].lower(), user["address"]["zip"]) == (
                first_name.strip().lower(), last_name.strip().lower(), zip.strip()):
                return uid
        raise EnvError("user not found")

    def get_user_details(self, user_id: str) -> Any:
        return self._get("users", user_id, "user")

    def get_order_details(self, order_id: str) -> Any:
        return self._order(order_id)

    def get_product_details(self, product_id: str) -> Any:
        return self._get("products", product_id, "product")

    def list_all_product_types(self) -> Any:
        return {self.db.get("products", p)["name"]: p for p in sorted(self.db.keys("products"))}

    # -- write tools ------------------------------------------------------
    def cancel_pending_order(self, order_id: str, reason: str) -> Any:
        order = self._order(order_id, "pending")
        for p in order["payment_history"]:
            if p["transaction_type"] == "payment":
                self._pay(order["user_id"], p["payment_method_id"], -p["amount"])
        order = self.db.mutable("orders", order_id)
        refunds = [{"transaction_type": "refund", "amount": p["amount"], "payment_method_id": p["payment_method_id"]}
                   for p in order["payment_history"] if p["transaction_type"] == "payment"]
        order["payment_history"] += refunds
        order["status"], order["cancel_reason"] = "cancelled", reason
        return order

    def modify_pending_order_address(self, order_id: str, **address: str) -> Any:
        self._order(order_id, "pending")
        order = self.db.mutable("orders", order_id)
        order["address"] = {k: address[k] for k in ADDRESS_FIELDS}
        return order

    def modify_pending_order_payment(self, order_id: str, payment_method_id: str) -> Any:
        order = self._order(order_id, "pending")
        payments = [p for p in order["payment_history"] if p["transaction_type"] == "payment"]
        if len(payments) != 1:
            raise EnvError("only an order paid with a single method can change its payment method")
        old = payments[0]
        if old["payment_method_id"] == payment_method_id:
            raise EnvError("the new payment method must differ from the original one")
        self._pay(order["user_id"], payment_method_id, old["amount"])
        self._pay(order["user_id"], old["payment_method_id"], -old["amount"])
        order = self.db.mutable("orders", order_id)
        order["payment_history"] += [
            {"transaction_type": "payment", "amount": old["amount"], "payment_method_id": payment_method_id},
            {"transaction_type": "refund", "amount": old["amount"], "payment_method_id": old["payment_method_id"]},
        ]
        return order

    def modify_pending_order_items(self, order_id: str, item_ids: list, new_item_ids: list, payment_method_id: str) -> Any:
        order = self._order(order_id, "pending")
        diff = self._swap_items(order, item_ids, new_item_ids)
        self._payment(order["user_id"], payment_method_id)
        self._pay(order["user_id"], payment_method_id, diff)
        order = self.db.mutable("orders", order_id)
        for old_id, new_id in zip(item_ids, new_item_ids):
            item = next(i for i in order["items"] if i["item_id"] == old_id)
            variant = self.db.get("products", item["product_id"])["variants"][new_id]
            item.update(item_id=new_id, price=variant["price"], options=dict(variant["options"]))
        kind = "payment" if diff > 0 else "refund"
        order["payment_history"].append({"transaction_type": kind, "amount": abs(diff), "payment_method_id": payment_method_id})
        order["status"] = "pending (item modified)"
        return order

    def modify_user_address(self, user_id: str, **address: str) -> Any:
        self._get("users", user_id, "user")
        user = self.db.mutable("users", user_id)
        user["address"] = {k: address[k] for k in ADDRESS_FIELDS}
        return user

    def return_delivered_order_items(self, order_id: str, item_ids: list, payment_method_id: str) -> Any:
        order = self._order(order_id, "delivered")
        if not item_ids or Counter(item_ids) - Counter(i["item_id"] for i in order["items"]):
            raise EnvError(f"item_ids must be items of order {order_id}")
        original = {p["payment_method_id"] for p in order["payment_history"]}
        method = self._payment(order["user_id"], payment_method_id)
        if payment_method_id not in original and method["source"] != "gift_card":
            raise EnvError("the refund must go to the original payment method or an existing gift card")
        order = self.db.mutable("orders", order_id)
        order.update(status="return requested", return_items=sorted(item_ids), return_payment_method_id=payment_method_id)
        return order

    def exchange_delivered_order_items(self, order_id: str, item_ids: list, new_item_ids: list,
                                       payment_method_id: str) -> Any:
        order = self._order(order_id, "delivered")
        diff = self._swap_items(order, item_ids, new_item_ids)
        method = self._payment(order["user_id"], payment_method_id)
        if method["source"] == "gift_card" and diff > method["balance"]:
            raise EnvError(f"gift card balance {method['balance']} does not cover {diff}")
        order = self.db.mutable("orders", order_id)
        order.update(status="exchange requested", exchange_items=sorted(item_ids), exchange_new_items=sorted(new_item_ids),
                     exchange_payment_method_id=payment_method_id, exchange_price_difference=diff)
        return order


_ADDRESS = {k: STR for k in ADDRESS_FIELDS}
TOOLS = [
    _t("find_user_id_by_email", "Find a user id by email.", obj(email=s("Such as 'something@example.com'."))),
    _t("find_user_id_by_name_zip", "Find a user id by first name, last name and zip code.",
       obj(first_name=STR, last_name=STR, zip=s("Such as '12345'."))),
    _t("get_user_details", "Get the details of a user, including their orders.", obj(user_id=STR)),
    _t("get_order_details", "Get the status and details of an order.", obj(order_id=s("Such as '#W0000000'."))),
    _t("get_product_details", "Get the inventory details of a product (its variant items).", obj(product_id=STR)),
    _t("list_all_product_types", "List the name and product id of every product type.", obj()),
    CALCULATE,
    TRANSFER,
    _t("cancel_pending_order", "Cancel a pending order.",
       obj(order_id=STR, reason={"type": "string", "enum": CANCEL_REASONS}), writes=True),
    _t("modify_pending_order_address", "Modify the shipping address of a pending order.",
       obj(order_id=STR, **_ADDRESS), writes=True),
    _t("modify_pending_order_payment", "Modify the payment method of a pending order.",
       obj(order_id=STR, payment_method_id=STR), writes=True),
    _t("modify_pending_order_items", "Modify items of a pending order to other variants of the same products (once per order).",
       obj(order_id=STR, item_ids=STR_LIST, new_item_ids=STR_LIST, payment_method_id=STR), writes=True),
    _t("modify_user_address", "Modify the default address of a user.", obj(user_id=STR, **_ADDRESS), writes=True),
    _t("return_delivered_order_items", "Return items of a delivered order.",
       obj(order_id=STR, item_ids=STR_LIST, payment_method_id=STR), writes=True),
    _t("exchange_delivered_order_items", "Exchange items of a delivered order for other variants of the same products (once per order).",
       obj(order_id=STR, item_ids=STR_LIST, new_item_ids=STR_LIST, payment_method_id=STR), writes=True),
]
RetailEnv.tool_list = TOOLS
