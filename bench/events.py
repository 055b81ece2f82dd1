"""Realistic JSON event values: click events (~100 B) and order events (~1 KiB).

Seeded, varied, with random ids, timestamps, nested fields and free text, so that
compression ratios resemble real traffic rather than repeated characters.
"""

from __future__ import annotations

import json
import random
from typing import Any

WORDS = (
    "the", "customer", "asked", "for", "delivery", "before", "noon", "please", "leave",
    "parcel", "at", "front", "door", "gift", "wrap", "with", "card", "happy", "birthday",
    "from", "all", "of", "us", "call", "on", "arrival", "fragile", "glass", "handle", "care",
    "second", "floor", "ring", "bell", "twice", "no", "plastic", "bags", "thanks", "again",
    "quick", "service", "order", "arrived", "damaged", "last", "time", "replace", "box", "if",
    "possible", "size", "colour", "blue", "black", "medium", "large", "return", "exchange",
    "invoice", "company", "address", "weekend", "morning", "evening", "neighbour", "garage",
)
PRODUCTS = ("wireless earbuds", "running shoes", "espresso beans", "yoga mat", "desk lamp",
            "phone case", "water bottle", "backpack", "usb-c cable", "notebook",
            "wool socks", "sunglasses", "cutting board", "face cream", "board game")
PAGES = ("/", "/search", "/cart", "/checkout", "/account", "/deals", "/help", "/p")
REFERRERS = ("search", "email", "direct", "social", "ads", "partner")
COUNTRIES = ("DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", "SE", "CA")
CITIES = ("Berlin", "Paris", "Austin", "Leeds", "Utrecht", "Sevilla", "Torino", "Gdansk")
TS0 = 1_718_000_000_000


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _fill_text(rng: random.Random, doc: dict[str, Any], field: str, target: int) -> bytes:
    """Grow ``doc[field]`` word by word while the JSON stays at or under ``target`` bytes."""
    words: list[str] = []
    doc[field] = ""
    out = _encode(doc)
    while True:
        words.append(rng.choice(WORDS))
        doc[field] = " ".join(words)
        candidate = _encode(doc)
        if len(candidate) > target:
            return out
        out = candidate


def click_event(rng: random.Random, i: int) -> bytes:
    """A page-view/click event of about 100 bytes."""
    doc: dict[str, Any] = {
        "ev": rng.choice(("view", "click", "add")), "uid": f"u{rng.randrange(10**6)}",
        "ts": TS0 + i * 37 + rng.randrange(30),
        "page": rng.choice(PAGES),
        "ref": rng.choice(REFERRERS),
    }
    return _fill_text(rng, doc, "q", 100 + rng.randrange(-8, 9))


def _line_item(rng: random.Random) -> dict[str, Any]:
    return {"sku": f"SKU-{rng.randrange(10**5):05d}", "name": rng.choice(PRODUCTS),
            "qty": rng.randrange(1, 4), "unit_price": round(rng.uniform(2, 250), 2)}


def order_event(rng: random.Random, i: int) -> bytes:
    """An order-created event of about 1 KiB: customer, line items, shipping, a note."""
    items = [_line_item(rng) for _ in range(rng.randrange(2, 6))]
    doc: dict[str, Any] = {
        "event": "order_created", "event_id": _hex(rng, 32), "occurred_at": TS0 + i * 211,
        "order": {
            "id": f"ord_{_hex(rng, 12)}", "currency": "EUR", "items": items,
            "total": round(sum(it["qty"] * it["unit_price"] for it in items), 2),
            "customer": {"id": f"cus_{rng.randrange(10**7)}", "tier": rng.choice(("std", "gold")),
                         "email": f"user{rng.randrange(10**6)}@example.com",
                         "country": rng.choice(COUNTRIES)},
            "shipping": {"method": rng.choice(("standard", "express", "pickup")),
                         "city": rng.choice(CITIES), "postcode": f"{rng.randrange(10**5):05d}"},
        },
        "trace": {"request_id": _hex(rng, 16), "client": "web/4.12.0", "ip": "203.0.113.7"},
    }
    return _fill_text(rng, doc, "note", 1024 + rng.randrange(-48, 49))


def make_values(kind: str, count: int, seed: int = 7) -> list[bytes]:
    """``count`` values of ``kind`` ("100 B" or "1 KiB"), reproducible for a seed."""
    rng = random.Random(seed)
    make = click_event if kind == "100 B" else order_event
    return [make(rng, i) for i in range(count)]


def make_keys(count: int, seed: int = 11) -> list[bytes]:
    """Customer-id style record keys."""
    rng = random.Random(seed)
    return [f"cus_{rng.randrange(10**5)}".encode() for _ in range(count)]
