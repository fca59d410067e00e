"""The SDK's JSON against serde_json itself, on hand-picked and generated
documents: the same values, the same bytes written back, the same errors at the
same positions, as a Value and as the inventory's structs.

The referee is tests/serde_check (Rust). Build it, then point the test at it:

    cargo build --release --offline --manifest-path guest-sdk/python/tests/serde_check/Cargo.toml
    SERDE_CHECK=guest-sdk/python/tests/serde_check/target/release/serde-check pytest guest-sdk/python/tests

Without SERDE_CHECK the test is skipped (it needs a Rust toolchain).
"""

import os
import random
import subprocess

import pytest

from router_guest import Event, HandlerError, serde_json
from router_guest.schema import I64, List, Optional, String, Struct

CHECK = os.environ.get("SERDE_CHECK")
pytestmark = pytest.mark.skipif(not CHECK, reason="SERDE_CHECK names no serde-check binary")

ITEM = Struct("OrderItem", {"productId": String, "quantity": I64})
SHAPES = {
    "ORDER": Struct("Order", {"orderId": String, "items": List(ITEM)}),
    "NOTED": Struct("Noted", {"orderId": String, "items": List(ITEM), "note": Optional(String)}),
}

CASES = [
    b"", b"nope", b"hello", b"{", b'{"a":1} x', b"[1,]", b'{"a" 1}', b"01", b"1.", b"-", b'"\\x"',
    b"{1:2}", b"[1 2]", b'"ab', b"1e999", b"\xef\xbb\xbf{}", b'"\xff"', b'"\\ud800"', b'"\\ud800\\u0041"',
    b'"\\udc00"', b'"\\ud800\\', b'"\\u12"', b'"\\u12G4"', b'{"a":NaN}', b"[" * 200, b"[" * 127 + b"]" * 127,
    b'{\n  "a": [1,\n  2 3]}', b"-0",
    b"[-0, 18446744073709551615, 18446744073709551616, 1e2, -9223372036854775809, 1.5e300, 1e-5, 0.1]",
    b"[1e15, 1e16, 1e17, 1e21, 1.5e16, 123456789012345678.5, 1e-4, 1e-6, 1e-7, 5e-324, 12345.678]",
    b'{"orderId":"o","items":[{"productId":"p","quantity":true}]}',
    b'{"orderId":"o","items":[{"productId":"p","quantity":9223372036854775808}]}',
    b'{"orderId":"o","items":[],"orderId":"p"}', b'{"orderId" : "o","items":[],"orderId" :"p"}',
    b'{"orderId":"a\\"b\\n\\u0001\\u00e9","items":null}', b'{"orderId":["x"],"items":[]}', b'["o"]',
    b'["o",[],null,1]', b'["o",[["p",2]]]', b'{"items":[]}', b'{"orderId":7,"items":[]}',
    b'{"orderId":1e20,"items":[]}', b'{"orderId":"o-1","items":{}}', b'{"orderId":"o-1","items":[{"quantity":1}]}',
    b'"o-1"', b"null", b"true", b"12", b'{"x":"\t"}', b'{"x":"\xff","orderId":"a","items":[]}',
    b'{"x":1e999,"orderId":"a","items":[]}', b'{"x":"\\ud800","orderId":"a","items":[]}', b'"a\xff\\nb"',
    b'"\\na\xffb"', b'"a\xe2\x82b\\t"', b'{"orderId":"o","items":[],"note":5}', b'{"a":1,}', b"{,}", b"[,1]",
    b'{"a":}', b"tru", b"1e", b"1e+", b"-a", b"1.e5", b'{"b":{"z":1,"a":[{"y":2,"x":1}]},"a":0}',
]
SEEDS = [
    b'{"orderId":"o-1","customerId":"c","items":[{"productId":"p-1","quantity":2},{"productId":"p-2","quantity":1}]}',
    b'{ "orderId" : "o\\u00e9\\n", "items" : [ ["p", 3] ], "note": "x", "extra": {"a": [1.5e3, -0, true, null, "\\ud83d\\ude00"]} }',
    b'["o",[{"quantity":5,"productId":"q"}],null]',
]
ALPHABET = b'{}[]:,"\\ \n-0123456789.eE+tfnulsa\xff\x01'


def generated(count: int, seed: int):
    rnd = random.Random(seed)
    for _ in range(count):
        doc = bytearray(rnd.choice(SEEDS))
        for _ in range(rnd.randint(1, 3)):
            op, at = rnd.randrange(3), rnd.randrange(len(doc) + 1)
            if op == 0 and at < len(doc):
                del doc[at]
            elif op == 1:
                doc[at:at] = bytes([rnd.choice(ALPHABET)])
            elif at < len(doc):
                doc[at] = rnd.choice(ALPHABET)
        yield bytes(doc)


def ours(data: bytes):
    try:
        value = serde_json.dumps(serde_json.loads(data), sort_keys=True).decode()
    except serde_json.Error as e:
        value = f"ERR {e}"
    out = {"VALUE": value}
    for name, shape in SHAPES.items():
        try:
            Event("e", "/s", "t").with_data(data, "x").data_as(shape)
            out[name] = "ok"
        except HandlerError as e:
            out[name] = "ERR " + e.message.split("JSON: ", 1)[1]
    return out


def test_reads_writes_and_fails_as_serde_json(tmp_path):
    docs = CASES + list(generated(3000, 1))
    paths = []
    for i, doc in enumerate(docs):
        path = tmp_path / f"{i:05d}"
        path.write_bytes(doc)
        paths.append(str(path))
    theirs = {}
    for start in range(0, len(paths), 1000):
        out = subprocess.run([CHECK, *paths[start:start + 1000]], capture_output=True, check=True).stdout
        for line in out.decode().splitlines():
            path, reading, outcome = line.split("\t", 2)
            theirs[(path, reading)] = outcome
    differences = [
        (doc, reading, theirs[(path, reading)], outcome)
        for path, doc in zip(paths, docs)
        for reading, outcome in ours(doc).items()
        if theirs[(path, reading)] != outcome
    ]
    assert differences == [], differences[:5]
