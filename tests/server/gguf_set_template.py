#!/usr/bin/env python3
"""Copy a GGUF file with tokenizer.chat_template set to a given template (test helper).

usage: gguf_set_template.py IN.gguf OUT.gguf TEMPLATE_FILE
Rewrites the metadata (replacing or appending the key), keeps tensor infos and data; the data
section is re-aligned to general.alignment (default 32), tensor offsets are relative to it.
"""
import struct
import sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def read_str(b, o):
    n = struct.unpack_from("<Q", b, o)[0]
    return b[o + 8:o + 8 + n], o + 8 + n


def skip_value(b, o, t):
    if t in SIZES:
        return o + SIZES[t]
    if t == 8:
        return read_str(b, o)[1]
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, o)
        o += 12
        for _ in range(n):
            o = skip_value(b, o, et)
        return o
    raise ValueError("bad GGUF type %d" % t)


def main():
    src, dst, tmpl_path = sys.argv[1:4]
    b = open(src, "rb").read()
    tmpl = open(tmpl_path, "rb").read()
    magic, version, n_t, n_kv = struct.unpack_from("<4sIQQ", b, 0)
    assert magic == b"GGUF" and version >= 2
    o, kvs, align = 24, [], 32
    for _ in range(n_kv):
        start = o
        key, o = read_str(b, o)
        t = struct.unpack_from("<I", b, o)[0]
        o += 4
        vstart = o
        o = skip_value(b, o, t)
        if key == b"general.alignment":
            align = struct.unpack_from("<I", b, vstart)[0]
        if key != b"tokenizer.chat_template":
            kvs.append(b[start:o])
    kvs.append(struct.pack("<Q", 23) + b"tokenizer.chat_template" + struct.pack("<IQ", 8, len(tmpl))
               + tmpl)
    t_start = o
    for _ in range(n_t):
        _, o = read_str(b, o)
        nd = struct.unpack_from("<I", b, o)[0]
        o += 4 + 8 * nd + 4 + 8
    infos = b[t_start:o]
    data = b[(o + align - 1) // align * align:]
    head = struct.pack("<4sIQQ", b"GGUF", version, n_t, len(kvs)) + b"".join(kvs) + infos
    head += b"\0" * ((-len(head)) % align)
    open(dst, "wb").write(head + data)


main()
