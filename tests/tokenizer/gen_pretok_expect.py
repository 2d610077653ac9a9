#!/usr/bin/env python3
"""Expected pre-token splits for tests/tokenizer/test_bpe.c, made with Python's `regex` module
(an independent backtracking engine with Unicode properties) from the regex lists of llama.cpp's
llm_tokenizer_bpe (llama-vocab.cpp), applied the way llama.cpp's unicode_regex_split does: each
regex runs inside every piece left by the ones before it, and both its matches and the gaps
between them become pieces. `\\s` is written out as llama.cpp's whitespace (Unicode White_Space),
`$` matches only at the end. Output: tests/tokenizer/pretok_expect.h (a C table).
usage: python3 tests/tokenizer/gen_pretok_expect.py > tests/tokenizer/pretok_expect.h"""
import regex

WS = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
CONTR = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
LLAMA3 = CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
UL = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+"
LU = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*"
TEKKEN = UL + "|" + LU + r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
GPT4O = UL + CONTR + "?|" + LU + CONTR + r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
PORO = r" ?[^(\s|.,!?…。，、।۔،)]+"
CJK = r"[一-龥ࠀ-一가-퟿]+"
DSLLM_L = r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+"  # cased letters, escaped (NFC-safe)
DSLLM_L = __import__('re').sub(r'\\x\{([0-9A-F]+)\}', lambda m: '\\U%08x' % int(m.group(1), 16), DSLLM_L)

PRE = [
    ("default", [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"]),
    ("llama-bpe", [LLAMA3]),
    ("dbrx", [LLAMA3]),
    ("chatglm-bpe", [LLAMA3]),
    ("deepseek-llm", ["[\r\n]", DSLLM_L, "\\s?[!-/:-~！-／：-～‘-‟　-。]+", r"\s+$", CJK, r"\p{N}+"]),
    ("deepseek-coder", ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK, r"\p{N}"]),
    ("falcon", [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"]),
    ("starcoder", [r"\p{N}", GPT2]),
    ("gpt-2", [GPT2]),
    ("qwen2", [QWEN2]),
    ("poro-chat", [PORO]),
    ("viking", [PORO, r"\p{N}"]),
    ("tekken", [TEKKEN]),
    ("chameleon", [r"<sentinel:[0-9]+>", r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )",
                   r"\p{N}", r"[\p{P}!-/:-@\[-`{-~]", GPT2]),
    ("gpt-4o", [GPT4O]),
    ("seed-coder", [CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"]),
    ("qwen35", [CONTR + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]),
    ("grok-2", [QWEN2]),
    ("ufakzeka", [r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]),
    ("minicpm5", [r"\p{N}{1,3}", CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]),
    ("exaone-moe", [CONTR + r"|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+"]),
    ("jais-2", [CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}"]),
    ("granite-embed-multi-97m", [r"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+" + CONTR + r"?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*" + CONTR + r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"]),
    ("bailingmoe", [r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"]),
]

TEXTS = [
    "Hello world", "  leading and trailing  ", "I'm sure we'LL see, don't you?",
    "3.14159 and 1234567 items", "tab\tsep\nnew\r\nline\n\n\n", "你好世界 ok 안녕하세요",
    "émigré naïve Führer", "$x += y~z | a^b", "a...b!!!c???", "  \n\n  x",
    "CamelCaseWord HTTPServer getHTTPResponseCode", "👍🏽 emoji 🦙.cpp", "file/path/x.c\n",
    "<sentinel:12>IMGIMGABZ", "нещо на Български", "٣٤٥ digits ١٢", "\u3000ideographic\u3000space",
    "nbsp\u00a0here\u0085nel", "   ", "x", "", "combining e\u0301 a\u0308 Ж\u0306", " " * 40 + "x",
]

def rewrite(r):
    out, i, cls = [], 0, False
    while i < len(r):
        c = r[i]
        if c == "\\" and i + 1 < len(r):
            e = r[i + 1]
            if e == "s" or (e == "S" and not cls):
                inner = ("^" if e == "S" else "") + WS
                out.append(inner if cls else "[" + inner + "]")
            else:
                out.append(c + e)
            i += 2
            continue
        if c == "[" and not cls:
            cls = True
            out.append(c)
            if r[i + 1:i + 2] == "^":
                out.append("^"); i += 1
            i += 1
            continue
        if c == "]" and cls:
            cls = False
        out.append(c)
        i += 1
    return "".join(out)

def split(res, text):
    pieces = [text] if text else []
    for r in res:
        r = rewrite(r)
        if r.endswith("+$"):  # deepseek-llm's \s+$: the end of the piece only
            r = r[:-1] + r"\Z"
        rx = regex.compile(r, regex.V0)
        nxt = []
        for p in pieces:
            last = 0
            for m in rx.finditer(p):
                if m.end() == m.start():
                    continue
                if m.start() > last:
                    nxt.append(p[last:m.start()])
                nxt.append(m.group())
                last = m.end()
            if last < len(p):
                nxt.append(p[last:])
        pieces = nxt
    return pieces

def c_str(s):
    out = []
    for b in s.encode("utf-8"):
        if 0x20 <= b < 0x7f and chr(b) not in '"\\?':
            out.append(chr(b))
        else:
            out.append("\\x%02x\"\"" % b)
    return '"' + "".join(out) + '"'

print("/* GENERATED by tests/tokenizer/gen_pretok_expect.py (Python regex %s): expected pre-token\n"
      " * splits; pieces are separated by \\x01. Do not edit. */" % regex.__version__)
print("static const char *const pretok_texts[] = {")
for t in TEXTS:
    print("    %s," % c_str(t))
print("};")
print("static const struct {\n    const char *pre;\n    const char *want[%d];\n} pretok_expect[] = {" % len(TEXTS))
for name, res in PRE:
    print("    {%s, {" % c_str(name))
    for t in TEXTS:
        print("        %s," % c_str("\x01".join(split(res, t))))
    print("    }},")
print("};")
