"""Opaque, tamper-proof pagination tokens.

A token is base64 (the model's alphabet: `^[a-zA-Z0-9/+=]*$`) of a JSON position plus an
HMAC-SHA256 over it and the listing's scope (operation and filters). A forged, truncated or
foreign token, or one reused with other filters, is a ValidationException, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, TypedDict, TypeVar

from openlookout.core.errors import ValidationException
from openlookout.settings import settings

_MAC_BYTES = 16

Item = TypeVar("Item")


def _secret() -> bytes:
    return settings().token_secret.encode("utf-8")  # required: the settings refuse an empty one


def _mac(scope: str, payload: bytes) -> bytes:
    return hmac.new(_secret(), scope.encode("utf-8") + b"\0" + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_token(scope: str, position: Any) -> str:
    payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.b64encode(_mac(scope, payload) + payload).decode("ascii")


def decode_token(scope: str, token: str) -> Any:
    invalid = ValidationException("The pagination token is invalid.")
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise invalid from None
    mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(scope, payload)):
        raise invalid
    return json.loads(payload)


def page_size(max_results: int | None, default: int = 100) -> int:
    return default if max_results is None else max_results


class NextPage(TypedDict, total=False):
    NextToken: str


def read_page(
    scope: str,
    next_token: str | None,
    max_results: int | None,
    query: Callable[[Any, int], Iterable[Item]],
    position: Callable[[Item], Any],
) -> tuple[list[Item], NextPage]:
    """One page of a listing: `query(after, count)` yields items after the token's position (None
    on the first page); one more than asked tells whether a next page exists, so the last page has
    no NextToken. Returns the page and `{"NextToken": ...}` or `{}`, to spread into the answer."""
    after = decode_token(scope, next_token)["after"] if next_token else None
    limit = page_size(max_results)
    items = list(islice(query(after, limit + 1), limit + 1))
    if len(items) <= limit:
        return items, NextPage()
    return items[:limit], {"NextToken": encode_token(scope, {"after": position(items[limit - 1])})}
