"""grpcio (the C-core Python client) with gzip on every call: `compression=grpc.Compression.Gzip`
on the channel, so each request message goes compressed (`grpc-encoding: gzip`, compressed-flag
frames) and the answers may come back compressed (grpcio sends `grpc-accept-encoding: gzip`).

No generated code: the messages are a few protobuf fields, written and read by hand below, and
the calls are grpcio's generic `unary_unary` with raw bytes.

Env: SWITCHYARD_URL (http://127.0.0.1:PORT), SWITCHYARD_TOKEN. Prints one JSON line; exits
non-zero on any mismatch.
"""

import json
import os
import sys

import grpc

MGMT = "/zitadel.management.v1.ManagementService/"


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited field (string, bytes, message)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def flag(number, value):
    return varint(number << 3) + varint(1 if value else 0)


def parse(data):
    """Field number -> list of values: bytes for length-delimited, int for varints."""
    fields, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(data, i)
        elif wire == 2:
            length, i = read_varint(data, i)
            value, i = data[i : i + length], i + length
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def read_varint(data, i):
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def check(what, actual, expected):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def main():
    url = os.environ["SWITCHYARD_URL"]
    token = os.environ["SWITCHYARD_TOKEN"]
    target = url.removeprefix("http://")
    metadata = [("authorization", f"Bearer {token}")]
    channel = grpc.insecure_channel(target, compression=grpc.Compression.Gzip)

    def call(method, request):
        stub = channel.unary_unary(MGMT + method)
        return parse(stub(request, metadata=metadata, timeout=30, compression=grpc.Compression.Gzip))

    org = parse(call("GetMyOrg", b"")[1][0])
    check("GetMyOrg org.name", org[4][0], b"ZITADEL")

    # Long, repetitive names: each request compresses well (grpc core sends a message
    # uncompressed when gzip would not make it smaller), and the list answer is several KiB.
    pad = "compressible-" * 12
    ids, names = [], []
    for i in range(8):
        name = f"gzip-{os.getpid()}-{i}-{pad}"
        request = (
            field(1, name)
            + field(2, field(1, "Grace " + pad) + field(2, "Hopper " + pad) + field(4, pad))
            + field(3, field(1, f"g{os.getpid()}x{i}@example.com") + flag(2, True))
            + field(5, "Secret123!")
        )
        added = call("AddHumanUser", request)
        ids.append(added[1][0].decode())
        names.append(name)

    got = call("GetUserByID", field(1, ids[0]))
    user = parse(got[1][0])
    check("GetUserByID user.user_name", user[4][0].decode(), names[0])
    check("GetUserByID user.state", user[3][0], 1)

    listed = call("ListUsers", b"")
    listed_names = {parse(u)[4][0].decode() for u in listed.get(3, [])}
    missing = [n for n in names if n not in listed_names]
    check("ListUsers missing users", missing, [])
    list_bytes = sum(len(u) for u in listed.get(3, []))

    try:
        call("GetUserByID", field(1, "no-such-user-" + pad))
        raise AssertionError("GetUserByID of an unknown id succeeded")
    except grpc.RpcError as err:
        check("unknown user code", err.code(), grpc.StatusCode.NOT_FOUND)
        not_found = err.details()

    print(
        json.dumps(
            {
                "ok": True,
                "client": f"grpcio {grpc.__version__} compression=Gzip",
                "userIds": ids,
                "usernames": names,
                "listBytes": list_bytes,
                "notFound": not_found,
            }
        )
    )


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - report any failure as the script's result
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
