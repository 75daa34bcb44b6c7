"""The τ²-bench retail environment: our own tools over its ``db.json``.

Tool names, arguments and semantics are τ²'s (``tau2.domains.retail.tools``),
quirks included, rewritten over a copy-on-write view of the shared database;
``tests/environments/test_tau2_parity.py`` runs τ²'s own tools beside these and
requires the same successes, failures and changed records. Deterministic, like
every environment.
"""

from __future__ import annotations

import json
from typing import Any

from environments.base import EnvError, method_tool as _t, obj
from environments.common_tools import CALCULATE, STR, STR_LIST, TRANSFER, s
from environments.tau2_data import Tau2Env

ADDRESS_FIELDS = ("address1", "address2", "city", "state", "country", "zip")
CANCEL_REASONS = ["no longer needed", "ordered by mistake"]


class RetailEnv(Tau2Env):
    name = "tau2-retail"
    domain = "retail"

    # -- lookups (τ²'s messages) ------------------------------------------
    def _get(self, table: str, key: str, what: str) -> dict[str, Any]:
        if (record := self.db.get(table, key)) is None:
            raise EnvError(f"{what} not found")
        return record

    def _order(self, order_id: str) -> dict[str, Any]:
        return self._get("orders", order_id, "Order")

    def _payment(self, user_id: str, payment_method_id: str) -> dict[str, Any]:
        method = self._get("users", user_id, "User")["payment_methods"].get(payment_method_id)
        if method is None:
            raise EnvError("Payment method not found")
        return method

    def _variant(self, product_id: str, variant_id: str) -> dict[str, Any]:
        variant = self._get("products", product_id, "Product")["variants"].get(variant_id)
        if variant is None:
            raise EnvError("Variant not found")
        return variant

    def _gift_card_add(self, user_id: str, payment_method_id: str, amount: float) -> None:
        user = self.db.mutable("users", user_id)
        method = user["payment_methods"][payment_method_id]
        method["balance"] = round(method["balance"] + amount, 2)

    @staticmethod
    def _check_counts(order: dict[str, Any], item_ids: list[str], message: str) -> None:
        have = [i["item_id"] for i in order["items"]]
        for item_id in item_ids:  # an id may repeat, as often as the order holds it
            if item_ids.count(item_id) > have.count(item_id):
                raise EnvError(message.format(item_id=item_id))

    # -- read tools -------------------------------------------------------
    def find_user_id_by_email(self, email: str) -> str:
        for uid in self.db.keys("users"):
            if self.db.get("users", uid)["email"].lower() == email.lower():
                return uid
        raise EnvError("User not found")

    def find_user_id_by_name_zip(self, first_name: str, last_name: str, zip: str) -> str:
        for uid in self.db.keys("users"):
            user = self.db.get("users", uid)
            if (user["name"]["first_name"].lower() == first_name.lower() and user["name"]["last_name"].lower() == last_name.lower()
                    and user["address"]["zip"] == zip):
                return uid
        raise EnvError("User not found")

    def get_user_details(self, user_id: str) -> Any:
        return self._get("users", user_id, "User")

    def get_order_details(self, order_id: str) -> Any:
        return self._order(order_id)

    def get_product_details(self, product_id: str) -> Any:
        return self._get("products", product_id, "Product")

    def list_all_product_types(self) -> Any:
        return json.dumps({self.db.get("products", p)["name"]: p for p in self.db.keys("products")}, sort_keys=True)

    # -- write tools (τ²'s semantics, quirks included: the differential test holds us to them) --
    def cancel_pending_order(self, order_id: str, reason: str) -> Any:
        order = self._order(order_id)
        if order["status"] != "pending":
            raise EnvError("Non-pending order cannot be cancelled")
        if reason not in CANCEL_REASONS:
            raise EnvError("Invalid reason")
        refunds = []
        for p in order["payment_history"]:  # every entry is reversed; gift cards are credited at once
            refunds.append({"transaction_type": "refund", "amount": p["amount"], "payment_method_id": p["payment_method_id"]})
            if self._payment(order["user_id"], p["payment_method_id"])["source"] == "gift_card":
                self._gift_card_add(order["user_id"], p["payment_method_id"], p["amount"])
        order = self.db.mutable("orders", order_id)
        order["status"], order["cancel_reason"] = "cancelled", reason
        order["payment_history"] += refunds
        return order

    def modify_pending_order_address(self, order_id: str, **address: str) -> Any:
        if "pending" not in self._order(order_id)["status"]:
            raise EnvError("Non-pending order cannot be modified")
        order = self.db.mutable("orders", order_id)
        order["address"] = {k: address[k] for k in ADDRESS_FIELDS}
        return order

    def modify_pending_order_payment(self, order_id: str, payment_method_id: str) -> Any:
        order = self._order(order_id)
        if "pending" not in order["status"]:
            raise EnvError("Non-pending order cannot be modified")
        method = self._payment(order["user_id"], payment_method_id)
        history = order["payment_history"]
        if len(history) != 1 or history[0]["transaction_type"] != "payment":
            raise EnvError("There should be exactly one payment for a pending order")
        old_id, amount = history[0]["payment_method_id"], history[0]["amount"]
        if old_id == payment_method_id:
            raise EnvError("The new payment method should be different from the current one")
        if method["source"] == "gift_card" and method["balance"] < amount:
            raise EnvError("Insufficient gift card balance to pay for the order")
        order = self.db.mutable("orders", order_id)
        order["payment_history"] += [
            {"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id},
            {"transaction_type": "refund", "amount": amount, "payment_method_id": old_id},
        ]
        if method["source"] == "gift_card":
            self._gift_card_add(order["user_id"], payment_method_id, -amount)
        if self._payment(order["user_id"], old_id)["source"] == "gift_card":  # τ² looks it up after the change
            self._gift_card_add(order["user_id"], old_id, amount)
        return order

    def modify_pending_order_items(self, order_id: str, item_ids: list, new_item_ids: list, payment_method_id: str) -> Any:
        order = self._order(order_id)
        if order["status"] != "pending":
            raise EnvError("Non-pending order cannot be modified")
        self._check_counts(order, item_ids, "{item_id} not found")
        if len(item_ids) != len(new_item_ids):
            raise EnvError("The number of items to be exchanged should match")
        diff, variant = 0, None
        for old_id, new_id in zip(item_ids, new_item_ids):
            if old_id == new_id:
                raise EnvError("The new item id should be different from the old item id")
            item = next(i for i in order["items"] if i["item_id"] == old_id)
            variant = self._variant(item["product_id"], new_id)
            if not variant["available"]:
                raise EnvError(f"New item {new_id} not found or available")
            diff += variant["price"] - item["price"]
        method = self._payment(order["user_id"], payment_method_id)
        if method["source"] == "gift_card" and method["balance"] < diff:
            raise EnvError("Insufficient gift card balance to pay for the new item")
        order = self.db.mutable("orders", order_id)
        order["payment_history"].append({"transaction_type": "payment" if diff > 0 else "refund", "amount": abs(diff),
                                         "payment_method_id": payment_method_id})
        if method["source"] == "gift_card":
            self._gift_card_add(order["user_id"], payment_method_id, -diff)
        for old_id, new_id in zip(item_ids, new_item_ids):
            item = next(i for i in order["items"] if i["item_id"] == old_id)
            # τ² gives every swapped item the price and options of the *last* new variant; kept as is
            item.update(item_id=new_id, price=variant["price"], options=dict(variant["options"]))
        order["status"] = "pending (item modified)"
        return order

    def modify_user_address(self, user_id: str, **address: str) -> Any:
        self._get("users", user_id, "User")
        user = self.db.mutable("users", user_id)
        user["address"] = {k: address[k] for k in ADDRESS_FIELDS}
        return user

    def return_delivered_order_items(self, order_id: str, item_ids: list, payment_method_id: str) -> Any:
        order = self._order(order_id)
        if order["status"] != "delivered":
            raise EnvError("Non-delivered order cannot be returned")
        method = self._payment(order["user_id"], payment_method_id)
        if method["source"] != "gift_card" and payment_method_id != order["payment_history"][0]["payment_method_id"]:
            raise EnvError("Payment method should be the original payment method")
        self._check_counts(order, item_ids, "Some item not found")
        order = self.db.mutable("orders", order_id)
        order.update(status="return requested", return_items=sorted(item_ids), return_payment_method_id=payment_method_id)
        return order

    def exchange_delivered_order_items(self, order_id: str, item_ids: list, new_item_ids: list,
                                       payment_method_id: str) -> Any:
        order = self._order(order_id)
        if order["status"] != "delivered":
            raise EnvError("Non-delivered order cannot be exchanged")
        self._check_counts(order, item_ids, "Number of {item_id} not found.")
        if len(item_ids) != len(new_item_ids):
            raise EnvError("The number of items to be exchanged should match.")
        diff = 0
        for old_id, new_id in zip(item_ids, new_item_ids):
            item = next(i for i in order["items"] if i["item_id"] == old_id)
            variant = self._variant(item["product_id"], new_id)
            if not variant["available"]:
                raise EnvError(f"New item {new_id} not found or available")
            diff += variant["price"] - item["price"]
        diff = round(diff, 2)
        method = self._payment(order["user_id"], payment_method_id)
        if method["source"] == "gift_card" and method["balance"] < diff:
            raise EnvError("Insufficient gift card balance to pay for the price difference")
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
