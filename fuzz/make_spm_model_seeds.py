#!/usr/bin/env python3
"""make_spm_model_seeds.py - writes small SentencePiece tokenizer.model files (protobuf
ModelProto, see src/model/hf_spm.c) as seeds for fuzz/fuzz_spm_model.c: a BPE model with the
special pieces, the 256 byte pieces and a few merged pieces; the same without trainer and
normalizer specs (protobuf defaults: a unigram model, refused); an explicit unigram model. Run: python3 fuzz/make_spm_model_seeds.py (writes into fuzz/seeds/spm_model/)."""
import struct


def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wt, payload):
    key = varint(num << 3 | wt)
    if wt == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def piece(text, score, typ):
    return field(1, 2, field(1, 2, text.encode()) + field(2, 5, struct.pack("<f", score)) +
                 field(3, 0, varint(typ)))


def model(model_type, specs=True):
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    pieces += [("<0x%02X>" % i, 0.0, 6) for i in range(256)]
    merged = ["\u2581t", "he", "\u2581the", "\u2581w", "or", "ld", "\u2581wor", "\u2581world", "\u2581"]
    pieces += [(p, -float(i), 1) for i, p in enumerate(merged)]
    pieces += [(c, -100.0 - i, 1) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")]
    out = b"".join(piece(*p) for p in pieces)
    if specs:
        trainer = field(3, 0, varint(model_type)) + field(40, 0, varint(0)) + \
            field(41, 0, varint(1)) + field(42, 0, varint(2)) + field(43, 0, varint(-1))
        out += field(2, 2, trainer) + field(3, 2, field(1, 2, b"identity") + field(3, 0, varint(1)))
    return out


import os
os.makedirs(os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "spm_model"), exist_ok=True)
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "spm_model"))
for name, data in [("bpe.model", model(2)), ("unigram.model", model(1)),
                   ("bpe_nospec.model", model(2, specs=False))]:
    with open(name, "wb") as f:
        f.write(data)
