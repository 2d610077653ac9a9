#!/usr/bin/env python3
"""make_gguf_seeds.py - write the seed corpus of fuzz/fuzz_gguf.c into fuzz/seeds/gguf/.

Usage: scripts/make_gguf_seeds.py [TESTDATA_DIR]   (default: $MLXR_TESTDATA, else ../shared/testdata
next to the repository)

Two kinds of seeds, all small so the fuzzer mutates structure rather than bulk data:
  - every GGUF in the test data, rewritten: the same version, keys, value types and tensor infos,
    but each array cut to its first MAX_ELEMS elements and each tensor shrunk to one block per
    dimension (ne = [block size, 1, ...], same n_dims and type), its data the first bytes of the
    original tensor;
  - hand-built files for what the test models lack: every value type, nested arrays (deepest
    allowed), version 2, general.alignment variants, empty tensors, a header-only file.
Only the Python standard library is used; the output is deterministic.
"""
import os
import struct
import sys

MAX_ELEMS = 32
# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: '<B', I8: '<b', U16: '<H', I16: '<h', U32: '<I', I32: '<i', F32: '<f', BOOL: '<B',
          U64: '<Q', I64: '<q', F64: '<d'}
# tensor type -> (elements per block, bytes per block), as in src/format/dtype.c
QK = 256
DTYPES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
          9: (32, 36), 10: (QK, 84), 11: (QK, 110), 12: (QK, 144), 13: (QK, 176), 14: (QK, 210),
          15: (QK, 292), 16: (QK, 66), 17: (QK, 74), 18: (QK, 98), 19: (QK, 50), 20: (32, 18),
          21: (QK, 110), 22: (QK, 82), 23: (QK, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
          27: (1, 8), 28: (1, 8), 29: (QK, 56), 30: (1, 2), 34: (QK, 54), 35: (QK, 66)}


# ---- reading -----------------------------------------------------------------------------------

class Reader:
    def __init__(self, data):
        self.b, self.p = data, 0

    def get(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.get('<Q')
        s = self.b[self.p:self.p + n]
        self.p += n
        return s

    def value(self, t):
        if t in SCALAR:
            return self.get(SCALAR[t])
        if t == STR:
            return self.string()
        et, n = self.get('<I'), self.get('<Q')
        return (et, [self.value(et) for _ in range(n)])


def read_gguf(data):
    r = Reader(data)
    assert r.b[:4] == b'GGUF'
    r.p = 4
    version, n_tensors, n_kv = r.get('<I'), r.get('<Q'), r.get('<Q')
    kvs = []
    for _ in range(n_kv):
        key, t = r.string(), r.get('<I')
        kvs.append((key, t, r.value(t)))
    tensors = []
    for _ in range(n_tensors):
        name, n_dims = r.string(), r.get('<I')
        ne = [r.get('<Q') for _ in range(n_dims)]
        tensors.append((name, ne, r.get('<I'), r.get('<Q')))
    align = next((v for k, t, v in kvs if k == b'general.alignment'), 32)
    data_offset = (r.p + align - 1) // align * align
    return version, kvs, tensors, data_offset


# ---- writing -----------------------------------------------------------------------------------

def w_str(s):
    return struct.pack('<Q', len(s)) + s


def w_value(t, v):
    if t in SCALAR:
        return struct.pack(SCALAR[t], v)
    if t == STR:
        return w_str(v)
    et, elems = v
    return struct.pack('<IQ', et, len(elems)) + b''.join(w_value(et, e) for e in elems)


def w_gguf(version, kvs, tensors, align=32, pad_tail=True):
    """kvs: [(key, type, value)]; tensors: [(name, ne, type, data)], placed in order, aligned."""
    out = b'GGUF' + struct.pack('<IQQ', version, len(tensors), len(kvs))
    out += b''.join(w_str(k) + struct.pack('<I', t) + w_value(t, v) for k, t, v in kvs)
    blob, offsets = b'', []
    for _, _, _, data in tensors:
        blob += b'\0' * (-len(blob) % align)
        offsets.append(len(blob))
        blob += data
    for (name, ne, t, _), off in zip(tensors, offsets):
        out += w_str(name) + struct.pack('<I', len(ne)) + b''.join(struct.pack('<Q', n) for n in ne)
        out += struct.pack('<IQ', t, off)
    if tensors or pad_tail:
        out += b'\0' * (-len(out) % align)
    return out + blob


def cut(t, v):
    """Arrays (nested too) cut to MAX_ELEMS elements."""
    if t != ARR:
        return v
    et, elems = v
    return (et, [cut(et, e) for e in elems[:MAX_ELEMS]])


def shrink(path):
    data = open(path, 'rb').read()
    version, kvs, tensors, data_offset = read_gguf(data)
    kvs = [(k, t, cut(t, v)) for k, t, v in kvs]
    small = []
    for name, ne, t, off in tensors:
        blck, size = DTYPES[t]
        start = data_offset + off
        small.append((name, [blck] + [1] * (len(ne) - 1), t, data[start:start + size]))
    return w_gguf(version, kvs, small, pad_tail=bool(tensors))


# ---- hand-built files --------------------------------------------------------------------------

def hand_built():
    f32 = lambda *x: struct.pack('<%df' % len(x), *x)
    every = [(b'u8', U8, 200), (b'i8', I8, -100), (b'u16', U16, 60000), (b'i16', I16, -30000),
             (b'u32', U32, 4000000000), (b'i32', I32, -2000000000), (b'f32', F32, 1.5),
             (b'bool', BOOL, 1), (b'str', STR, b'hello\0world\xff'), (b'u64', U64, 1 << 40),
             (b'i64', I64, -(1 << 40)), (b'f64', F64, 3.25),
             (b'a.u8', ARR, (U8, [1, 2, 3])), (b'a.i32', ARR, (I32, [-1, 7])),
             (b'a.f32', ARR, (F32, [0.5, -2.0])), (b'a.bool', ARR, (BOOL, [0, 1])),
             (b'a.u64', ARR, (U64, [5])), (b'a.f64', ARR, (F64, [1.0])),
             (b'a.str', ARR, (STR, [b'a', b'', b'ccc'])), (b'a.empty', ARR, (STR, [])),
             (b'a.a.str', ARR, (ARR, [(STR, [b'x', b'yy']), (STR, []), (STR, [b'zzz'])])),
             (b'a.a.i32', ARR, (ARR, [(I32, [1, 2, 3]), (I32, [4])]))]
    deep = (U8, [42])
    for _ in range(7):
        deep = (ARR, [deep])
    tensors = [(b'w', [32, 2], 8, bytes(68)), (b'v', [3], 0, f32(1, 2, 3)),
               (b'e', [0, 7], 0, b''), (b'q', [256, 1, 1, 2], 12, bytes(288))]
    seeds = {
        'hand-all-types.gguf': w_gguf(3, every, tensors),
        'hand-all-types-v2.gguf': w_gguf(2, every, tensors),
        'hand-nested-depth8.gguf': w_gguf(3, [(b'deep', ARR, deep)], []),
        'hand-header-only.gguf': w_gguf(3, [], [], pad_tail=False),
        'hand-vocab-no-padding.gguf': w_gguf(3, [(b'general.name', STR, b'v')], [], pad_tail=False),
    }
    for align in (1, 8, 64, 4096):
        kvs = [(b'general.name', STR, b'aligned'), (b'general.alignment', U32, align)]
        seeds['hand-align-%d.gguf' % align] = w_gguf(
            3, kvs, [(b'a', [3], 0, f32(1, 2, 3)), (b'b', [5, 1, 1], 24, bytes(5))], align)
    return seeds


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    testdata = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        'MLXR_TESTDATA', os.path.join(root, '..', 'shared', 'testdata'))
    out_dir = os.path.join(root, 'fuzz', 'seeds', 'gguf')
    os.makedirs(out_dir, exist_ok=True)
    seeds = hand_built()
    for sub in ('models', os.path.join('models', 'pydoc-7M'), 'tokenizer'):
        d = os.path.join(testdata, sub)
        for name in sorted(os.listdir(d)):
            if name.endswith('.gguf'):
                seeds['model-' + name] = shrink(os.path.join(d, name))
    total = 0
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out_dir, name), 'wb') as f:
            f.write(data)
        total += len(data)
    print('%d seeds, %d bytes in %s' % (len(seeds), total, out_dir))


if __name__ == '__main__':
    main()
