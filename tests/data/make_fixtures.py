#!/usr/bin/env python3
"""Safetensors files written and read independently of tapejit, with the standard library only
(struct, json), from the format description in huggingface/safetensors: an 8-byte little-endian
header length N, N bytes of JSON header, then the data; data_offsets are relative to the data.

  make_fixtures.py write [DIR]   writes the fixtures tests/check_io.c loads (default: next to
                                 this script); the files are checked in, so this is only rerun
                                 when fixtures change
  make_fixtures.py dump FILE     checks FILE against the format and prints every tensor (sorted
                                 by name) and metadata entry; tests/check_io.c compares the output
                                 for a file tapejit wrote; exit status 1 on a malformed file
"""
import json
import os
import struct
import sys

FMT = {"F32": ("<f", 4), "F64": ("<d", 8), "I32": ("<i", 4)}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def write(path, tensors, metadata=None, pad=True, key_order=None):
    """tensors: list of (name, dtype, shape, flat values), data laid out in this order.
    key_order: the order of the names in the JSON header (default: the data order)."""
    header, data = {}, b""
    for name, dtype, shape, values in tensors:
        fmt, size = FMT[dtype]
        assert len(values) == numel(shape)
        raw = b"".join(struct.pack(fmt, v) for v in values)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if key_order is not None:
        header = {k: header[k] for k in key_order}
    if metadata is not None:
        header = {"__metadata__": metadata, **header}
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def write_raw(path, header, data):
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def write_all(d):
    # F32, F64 (extreme values: a subnormal, the largest double, -0.0), I32 (its range), metadata
    # with non-ASCII text; the header lists the tensors in another order than their data.
    write(os.path.join(d, "basic.safetensors"), [
        ("b", "F64", [4], [1.0 / 3.0, -1.7976931348623157e308, 5e-324, -0.0]),
        ("a", "F32", [2, 3], [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]),
        ("c", "I32", [2, 2], [-2147483648, 2147483647, 0, -1]),
    ], metadata={"format": "pt", "note": "h\u00e9llo \u2713"}, key_order=["c", "a", "b"])
    # a 0-d tensor, empty tensors (one with zero-size data between others), no padding
    write(os.path.join(d, "scalar_empty.safetensors"), [
        ("scalar", "F32", [], [3.25]),
        ("empty", "F32", [0], []),
        ("empty3", "F64", [2, 0, 3], []),
        ("vec", "I32", [3], [7, 8, 9]),
    ], pad=False)
    # no tensors at all
    write(os.path.join(d, "none.safetensors"), [], metadata={"k": "v"})
    # a valid file in a dtype tapejit does not load
    write_raw(os.path.join(d, "bf16.safetensors"),
              {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\x80\x3f\x00\x40")


def fail(msg):
    print("malformed: " + msg)
    sys.exit(1)


def dump(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        fail("shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        fail("header length past the end")
    text = raw[8:8 + n]
    if not text.startswith(b"{"):
        fail("header does not start with {")
    header = json.loads(text.decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    spans = []
    out = []
    for name in sorted(header):
        info = header[name]
        dtype, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in FMT:
            fail("dtype %s is not one this script reads" % dtype)
        fmt, size = FMT[dtype]
        if e - b != numel(shape) * size or not 0 <= b <= e <= len(data):
            fail("bad offsets for " + name)
        spans.append((b, e))
        vals = [struct.unpack_from(fmt, data, b + i * size)[0] for i in range(numel(shape))]
        txt = " ".join(("%.17g" % v) if dtype != "I32" else str(v) for v in vals)
        out.append("%s %s %s [%s]" % (name, dtype, shape, txt))
    at = 0
    for b, e in sorted(spans):
        if b != at:
            fail("tensors do not tile the data")
        at = e
    if at != len(data):
        fail("data past the last tensor")
    for k in sorted(meta):
        if not isinstance(meta[k], str):
            fail("metadata value is not a string")
        out.append("meta %s=%s" % (k, meta[k]))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "write":
        write_all(sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(__file__)))
    elif len(sys.argv) == 3 and sys.argv[1] == "dump":
        dump(sys.argv[2])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
