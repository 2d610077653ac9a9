#!/usr/bin/env python3
"""mlx_dequant.py - an independent (Python standard library only) rendering of mlx's affine
dequantization, for tests/model/test_hf.c to check the packing of MLX-format files.

usage: mlx_dequant.py MODEL_DIR LAYER_PREFIX ROWS

Reads MODEL_DIR/config.json ("quantization": {"group_size", "bits"}) and the safetensors file
holding LAYER_PREFIX.weight (model.safetensors, or the shard model.safetensors.index.json names),
then prints, for the first ROWS rows, every dequantized element as the 8 hex digits of its float32
bits, one row per line, values separated by spaces. mlx's rule (mlx/backend/*/quantized):
    word j of a row packs 32 / bits codes, code k of the word in bits [k * bits, (k + 1) * bits);
    element i = scale[i // group_size] * code_i + bias[i // group_size]
computed in float32 (the product of an f16/bf16 scale and a code below 256 is exact in float32,
and Python's double sum rounded once to float32 is the float32 sum).
"""
import json
import os
import struct
import sys


def f16(u):
    return struct.unpack("<e", struct.pack("<H", u))[0]


def bf16(u):
    return struct.unpack("<f", struct.pack("<I", u << 16))[0]


def to_f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def tensor(path, header, base, name):
    e = header[name]
    b, end = e["data_offsets"]
    with open(path, "rb") as f:
        f.seek(base + b)
        return e, f.read(end - b)


def main():
    model_dir, prefix, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(os.path.join(model_dir, "config.json")) as f:
        q = json.load(f)["quantization"]
    if isinstance(q.get(prefix), dict):  # a per-layer override
        q = q[prefix]
    gs, bits = q["group_size"], q["bits"]
    file = "model.safetensors"
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            file = json.load(f)["weight_map"][prefix + ".weight"]
    path = os.path.join(model_dir, file)
    header, base = read_header(path)
    ew, w = tensor(path, header, base, prefix + ".weight")
    es, s = tensor(path, header, base, prefix + ".scales")
    _, b = tensor(path, header, base, prefix + ".biases")
    assert ew["dtype"] == "U32" and es["dtype"] in ("F16", "BF16")
    half = f16 if es["dtype"] == "F16" else bf16
    words = ew["shape"][1]
    cols = words * 32 // bits
    groups = cols // gs
    per = 32 // bits
    mask = (1 << bits) - 1
    out = []
    for r in range(min(rows, ew["shape"][0])):
        row_w = struct.unpack_from("<%dI" % words, w, 4 * r * words)
        row_s = struct.unpack_from("<%dH" % groups, s, 2 * r * groups)
        row_b = struct.unpack_from("<%dH" % groups, b, 2 * r * groups)
        vals = []
        for i in range(cols):
            code = (row_w[i // per] >> (bits * (i % per))) & mask
            g = i // gs
            x = to_f32(half(row_s[g]) * code + half(row_b[g]))
            vals.append("%08x" % struct.unpack("<I", struct.pack("<f", x))[0])
        out.append(" ".join(vals))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
