#!/usr/bin/env python3
"""ref_prefix.py - the bytes of a llama.cpp reference case's greedy text up to its first near-tie.

usage: ref_prefix.py CASE.json MARGIN

Writes the concatenated pieces (pieces_hex) of the generated tokens before the first step whose
top-2 logits (steps[i].top, from the reference run) differ by less than MARGIN. A model whose
products round differently from the reference's (int8 activation blocks, say) picks the same
tokens as the reference until such a near-tie, where it may pick the other one; tests compare
that prefix byte for byte.
"""
import json
import sys

r = json.load(open(sys.argv[1]))
margin = float(sys.argv[2])
k = next((i for i, s in enumerate(r["steps"]) if s["top"][0][1] - s["top"][1][1] < margin),
         len(r["steps"]))
sys.stdout.buffer.write(bytes.fromhex("".join(r["pieces_hex"][:k])))
