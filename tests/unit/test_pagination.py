import base64

import pytest

from openlookout.core.errors import ValidationException
from openlookout.core.pagination import decode_token, encode_token


def test_round_trip_and_alphabet():
    token = encode_token("ListProjects", {"after": "p/ü"})
    assert decode_token("ListProjects", token) == {"after": "p/ü"}
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=")


def test_token_is_bound_to_its_scope():
    token = encode_token("ListDatasetEntries/p/train", {"after": "x"})
    with pytest.raises(ValidationException):
        decode_token("ListDatasetEntries/p/test", token)


@pytest.mark.parametrize("mutate", ["flip", "truncate", "replace_payload", "garbage"])
def test_tampered_tokens_are_refused(mutate):
    token = encode_token("ListProjects", {"after": "a"})
    raw = bytearray(base64.b64decode(token))
    if mutate == "flip":
        raw[-2] ^= 1
        forged = base64.b64encode(bytes(raw)).decode()
    elif mutate == "truncate":
        forged = token[:8]
    elif mutate == "replace_payload":
        forged = base64.b64encode(bytes(raw[:16]) + b'{"after":"zzz"}').decode()
    else:
        forged = "not base64 at all!"
    with pytest.raises(ValidationException, match="pagination token"):
        decode_token("ListProjects", forged)
