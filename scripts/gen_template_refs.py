#!/usr/bin/env python3
"""Reference outputs for mlxr's chat-template interpreter, rendered by Python jinja2.

The environment is configured as Hugging Face transformers' apply_chat_template does:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]),
a tojson filter equal to json.dumps(x, ensure_ascii=False, indent, separators, sort_keys), and
the globals raise_exception(msg) (raises TemplateError(msg)) and strftime_now(fmt). strftime_now
uses MLXR_TEMPLATE_NOW (Unix seconds, formatted in UTC) when set; this script sets it to a fixed
time so the outputs are reproducible (the C tests set the same value).

Writes, from the repository root:
  tests/template/expected/<template>.<conversation>.txt   rendered text, or
  tests/template/expected/<template>.<conversation>.err   the exception message where jinja2 raises
  tests/template/jinja_cases.json                        language snippets -> output / error
  tests/template/random_cases.json                       random expressions and random statement /
      whitespace-control structures (fixed seeds) -> output / error, a differential test
  tests/template/expected_cli/<model>.<conversation>.txt  `mlxr template -m MODEL` outputs: the
      GGUF's own tokenizer.chat_template (read here with a small GGUF reader) or, for a model
      without one, the ChatML default, with the GGUF's BOS/EOS token texts

Templates come from TESTDATA/templates (TESTDATA = $MLXR_TESTDATA or ../shared/testdata);
conversations from tests/template/conversations/*.json (objects whose keys become the template's
variables); per-template bos_token/eos_token from tests/template/tokens.json.

usage: scripts/gen_template_refs.py
"""
import datetime
import glob
import json
import os
import random
import struct
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

NOW = "1735732800"  # 2025-01-01 12:00:00 UTC, also used by tests/template/test_templates.c


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        now = os.environ.get("MLXR_TEMPLATE_NOW")
        if now:
            t = datetime.datetime.fromtimestamp(int(now), tz=datetime.timezone.utc)
        else:
            t = datetime.datetime.now()
        return t.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, variables):
    """(True, text) or (False, message)."""
    try:
        return True, env.from_string(source).render(**variables)
    except jinja2.exceptions.TemplateSyntaxError:
        raise
    except Exception as e:  # the template raised, or a runtime error
        return False, str(e)


# Language snippets for tests/template/test_jinja.c: (template, variables).
SNIPPETS = [
    ("{{ 'hi' }} {{ \"a\\tb\\n\" }} {{ 'it''s' }}", {}),
    ("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }}", {}),
    ("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ 123456789.125 }} {{ 2.5e-7 }} {{ 1/3 }}", {}),
    ("{{ none }} {{ true }} {{ false }} {{ None }} {{ [1, 'a', none, true, 1.5] }}", {}),
    ("{{ {'a': 1, 'b': [2, 3], 'c': {'d': none}} }} {{ (1,) }} {{ (1, 'x') }} {{ () }}", {}),
    ("{{ ['it\\'s', 'a\"b', 'both\\'\"', 'tab\\t', 'nl\\n', 'uni é', '\\x01'] }}", {}),
    ("{{ x }}|{{ x.y is defined }}|{{ x is undefined }}|{{ d.missing }}|{{ d.a }}", {"d": {"a": 1}}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"a": 0, "b": "x"}),
    ("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
     "{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }},{% endfor %}", {"xs": ["a", "b", "c"]}),
    ("{% for x in xs %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }};{% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", {"xs": []}),
    ("{% for x in xs if x % 2 %}{{ x }}/{{ loop.length }} {% endfor %}", {"xs": [1, 2, 3, 4, 5]}),
    ("{% for x in xs %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}"
     "{{ x }}{% endfor %}", {"xs": [0, 1, 2, 3, 4]}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
     {"d": {"z": 1, "a": 2, "m": 3}}),
    ("{% set x = 1 %}{% for i in range(3) %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}"
     "{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = (3, 4) %}{% set c, d = t %}{{ c + d }}", {}),
    ("{% set x %}  block {{ 1 + 1 }}  {% endset %}[{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}", {}),
    ("{% macro m(a, b=2, c='c') %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} "
     "{{ m(1, c='z') }} {{ m(a=5, b=6) }}", {}),
    ("{% macro outer() %}[{{ caller() }}]{% endmacro %}{% call outer() %}inside {{ 1 }}{% endcall %}", {}),
    ("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}", {}),
    ("{% filter upper %}hello {{ 'x' }}{% endfilter %}", {}),
    ("{% raw %}{{ not parsed }} {% if %}{% endraw %}", {}),
    ("{# comment #}a{#- c2 -#}  b", {}),
    ("{{ 'abc'[1] }} {{ 'héllo'[1:3] }} {{ 'abcdef'[::2] }} {{ 'abc'[::-1] }} {{ [1,2,3,4][1:] }} "
     "{{ [1,2,3,4][-2:] }} {{ [1,2,3][:-1] }} {{ xs[0] }} {{ xs[-1] }}", {"xs": [10, 20]}),
    ("{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }} {{ 'x' + 'y' }}", {}),
    ("{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1,2] == [1,2] }} {{ 'b' in 'abc' }} "
     "{{ 2 not in [1] }} {{ 'k' in {'k': 1} }} {{ not 1 }} {{ 0 or 'x' }} {{ 1 and 2 }} {{ none or [] }}", {}),
    ("{{ 'yes' if x else 'no' }} {{ 'a' if false }}|{{ 1 if true else 2 if false else 3 }}", {"x": [1]}),
    ("{{ '  pad  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'abc'|length }}|{{ [1,2]|count }}|"
     "{{ 'Hello World'|upper }}|{{ 'ÉCOLE Straße'|lower }}|{{ 'hello big-world (x)'|title }}|"
     "{{ 'hELLO'|capitalize }}", {}),
    ("{{ d|items|list }} {{ [3,1,2]|sort }} {{ ['b','A','a']|sort }} {{ [3,1,2]|sort(reverse=true) }} "
     "{{ ['a','B','a','b']|unique|list }} {{ [1,2,3]|reverse|list }} {{ 'abc'|reverse }}", {"d": {"x": 1, "y": [2]}}),
    ("{{ xs|join(', ') }} {{ xs|first }} {{ xs|last }} {{ xs|length }} {{ 'abc'|list }} {{ xs|string }}",
     {"xs": ["a", "b", "c"]}),
    ("{{ '42'|int + 1 }} {{ '3.9'|int }} {{ 'x'|int(7) }} {{ 3.7|int }} {{ '2.5'|float }} {{ 1|float }} "
     "{{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.4|round(0, 'ceil') }}", {}),
    ("{{ 'a-b-c'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ x|default('dflt') }} "
     "{{ ''|default('e', true) }} {{ none|d('n', boolean=true) }} {{ 0|default(5) }}", {}),
    ("{{ users|map(attribute='name')|join(',') }} {{ users|selectattr('admin')|map(attribute='name')|list }} "
     "{{ users|rejectattr('admin')|list|length }} {{ users|selectattr('name', 'equalto', 'bo')|list }}",
     {"users": [{"name": "al", "admin": True}, {"name": "bo", "admin": False}, {"name": "cy"}]}),
    ("{{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3,4]|reject('even')|list }} {{ ['a','B']|map('upper')|list }} "
     "{{ [1,2,3,4,5]|batch(2)|list }} {{ [0, 1, '', 'x', none]|select|list }}", {}),
    ("{{ d|tojson }} {{ d|tojson(indent=2) }} {{ [1, 'é', none, true, 1.5]|tojson }} {{ 'q\"\\\\\\n'|tojson }} "
     "{{ d|tojson(sort_keys=true) }} {{ d|tojson(separators=(',', ':')) }} {{ {}|tojson }} {{ []|tojson(indent=2) }}",
     {"d": {"b": [1, {"c": 2.0}], "a": "x"}}),
    ("{{ 'line1\\nline2\\n\\nline4'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(4, blank=true) }}", {}),
    ("{{ '<a href=\"x\">&\\'</a>'|e }} {{ 'x'|safe }}", {}),
    ("{{ '  a b  '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}|{{ 'a,b,,c'.split(',') }}|"
     "{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}", {}),
    ("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'abcabc'.find('c') }} "
     "{{ 'abcabc'.rfind('c') }} {{ 'abcabc'.count('b') }} {{ 'aXbX'.replace('X', '-') }} {{ 'Ab'.upper() }} "
     "{{ 'Ab'.lower() }} {{ 'hello world'.title() }} {{ 'hello'.capitalize() }} {{ '-'.join(['a', 'b']) }}", {}),
    ("{{ '{} and {}'.format('a', 1) }} {{ '{0}{0}'.format('x') }} {{ '{n}!'.format(n='hi') }}", {}),
    ("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d.keys()|list }} {{ d.values()|list }} "
     "{{ d['items'] }} {{ d.items()|list }}", {"d": {"a": 1, "items": 2}}),
    ("{{ 1 is number }} {{ 1.5 is float }} {{ 1 is integer }} {{ true is number }} {{ 'a' is string }} "
     "{{ {} is mapping }} {{ [] is sequence }} {{ 'x' is iterable }} {{ none is none }} {{ 3 is odd }} "
     "{{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 2 is equalto 2 }} {{ 'x' is in 'xyz' }} {{ true is boolean }} "
     "{{ false is false }} {{ 1 is true }} {{ range is callable }} {{ 3 is gt 2 }} {{ 3 is le 2 }} "
     "{{ 'ab' is lower }} {{ 'AB' is upper }} {{ x is not defined }}", {}),
    ("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }}", {}),
    ("{{ raise_exception('Custom failure: ' ~ 42) }}", {}),
    ("before{% if true %}{{ raise_exception('inside if') }}{% endif %}", {}),
    ("{{ strftime_now('%Y-%m-%d %H:%M %A %d %b %Y') }}", {}),
    ("{{ xs.append(1) }}", {"xs": [1]}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ missing.attr }}", {}),
    ("{% for i in range(100001) %}{% endfor %}", {}),
    ("  {% if true %}\n    text\n  {% endif %}\n  {% for x in [1,2] %}\n{{ x }}\n  {% endfor %}\nend\n", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c\n{{- ' d ' -}}\n e {{+ 'f' }}  {%+ if true %}g{% endif +%}\nh", {}),
    ("line\n    {# comment #}\n  {%- set x = 1 %}\n\t{% if x %}yes{% endif %}\nlast\n\n", {}),
    ("{% if true %}\r\nwin\r\n{% endif %}\r\n", {}),
    ("x {% raw -%}   {{ r }}   {%- endraw %} y", {}),
    ("{% set xs = [3, 1, 2] %}{{ xs|sort|first }}{{ xs|max if false else '' }}{{ xs|sum }}", {}),
    ("{{ 'ÀÉÎõü'|lower }} {{ 'àéîõü'|upper }} {{ 'ǅ ǆ'|length }} {{ 'Ελληνικά'|upper }} {{ 'Привет'|upper }}", {}),
    ("{% for m in messages %}{{ m.role|capitalize }}: {{ m.content|trim }}\n{% endfor %}",
     {"messages": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo\n"}]}),
    ("{{ [{'a': 1}, {'a': 2}]|map(attribute='a')|sum }} {{ ['x', 'y']|map('upper')|join }} {{ [1, 2]|list|tojson }}", {}),
    ("{{ loop }}{% for a in [[1, 2], [3, 4]] %}{% for b in a %}{{ loop.index }}{{ b }}{% endfor %};{% endfor %}", {}),
    ("{{ 10 // 3 * 3 + 10 % 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ (1 + 2) * 3 }} {{ 1 - -1 }} {{ 3 - 2 - 1 }}", {}),
    ("{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}", {}),
    ("{{ 'é😀\\u0001'|tojson(ensure_ascii=true) }} {{ {1: 'a', true: 'b', none: 'c', 1.5: 'd'}|tojson }} "
     "{{ [1, [2, [3]], {}]|tojson(indent='\\t') }} {{ {'b': 1, 'a': {'d': 2, 'c': 3}}|tojson(indent=0, sort_keys=true) }}", {}),
    ("{{ namespace(a=1) }} {{ x|default(none) is none }} {{ 'a b  c'.split(none, 1) }} {{ [1, 2]|list is sequence }} "
     "{{ (xs|map('string')|join('/')) }} {{ xs|select('gt', 1)|list }} {{ xs|reject('in', [1, 3])|list }}", {"xs": [1, 2, 3]}),
    ("{% set d = {'b': 2, 'a': 1} %}{% for k, v in d|items %}{{ k }}{{ v }}{% endfor %} {{ d|length }} "
     "{{ d['a'] + d.b }} {{ ('a', 1) in d|items|list }}", {}),
    ("{{ 0.5|round }} {{ 1.5|round }} {{ -2.5|round }} {{ 2.675|round(2) }} {{ 1e15|int }} {{ 10|round(-1) }}", {}),
    ("{{ [1, 2, 3]|first + [4][0] }} {{ ''|first is undefined }} {{ 'abc'|last }} {{ [[1, 2], [3]]|map('length')|list }}", {}),
    ("{{ x.a.b }}", {"x": {"a": None}}),
    ("{{ none.x }}|{{ 5.x is defined }}|{{ 'abc'.zzz is defined }}", {}),
    ("{{ [3,1,2]|min }} {{ ['b','A']|max }} {{ [{'a':2},{'a':1}]|min(attribute='a') }} {{ {'b':1,'A':2,'a':0}|dictsort }} "
     "{{ {'b':1,'a':2}|dictsort(by='value') }} {{ {'b':1,'a':2}|dictsort(reverse=true) }} {{ []|max }}", {}),
    ("{% macro m() %}{{ caller(1, 2) }}{% endmacro %}{% call(a, b) m() %}[{{ a + b }}]{% endcall %}", {}),
    ("{{ '%s-%d %.2f %5s|%-4d|%r %%'|format('a', 3, 2.5, 'x', 7, 'q') }} {{ 'v=%s' % 3 }} {{ '%s %s' % ('a', 'b') }} "
     "{{ '%05.1f|%x|%+d|%3.1s|' % (3.14159, 255, 5, 'abc') }}", {}),
    ("{% if false %}{{ x|nosuch }}{{ x is nosuch }}{{ x|center }}{% endif %}ok", {}),
    ("{{ [1]|map('nosuch')|list }}", {}),
    ("{{ [1]|select('nosuch')|list }}", {}),
    ("{% for a, b in [[1, 2], [3, 4]] %}{{ a * b }},{% endfor %}{% for a, b in [(1, 2, 3)] %}{% endfor %}", {}),
]


# The default for models without a template (src/model/model_template.c), written independently.
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")

# (model file under TESTDATA, conversation) pairs for tests/cli/test_template_cli.sh
CLI_CASES = [("tokenizer/ggml-vocab-phi-3.gguf", "simple"), ("tokenizer/ggml-vocab-phi-3.gguf", "no_gen"),
             ("models/stories260K.gguf", "simple"), ("models/stories260K.gguf", "unicode")]


def gguf_kv(path):
    """The metadata key/values of a GGUF v2/v3 file (strings decoded as UTF-8)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"GGUF":
        raise ValueError(path + ": not a GGUF file")
    pos = 8
    _, n_kv = struct.unpack_from("<QQ", data, pos)
    pos += 16
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def read(t):
        nonlocal pos
        if t in scalar:
            (v,) = struct.unpack_from("<" + scalar[t], data, pos)
            pos += struct.calcsize(scalar[t])
            return v
        if t == 8:
            (n,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            v = data[pos:pos + n].decode("utf-8", "replace")
            pos += n
            return v
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            return [read(et) for _ in range(n)]
        raise ValueError(f"{path}: bad GGUF type {t}")

    kv = {}
    for _ in range(n_kv):
        key = read(8)
        (t,) = struct.unpack_from("<I", data, pos)
        pos += 4
        kv[key] = read(t)
    return kv


# ---- random differential cases ---------------------------------------------------------------

RANDOM_VARS = {"s": "Héllo wörld", "n": 7, "f": 2.5, "l": [3, "a", None, True, 1.5],
               "d": {"k": "v", "n": 2, "l": [1, 2]}, "e": "", "z": 0, "xs": [1, 2, 3], "t": True,
               "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " yo "}]}
R_FILTERS = ["length", "upper", "lower", "title", "capitalize", "trim", "first", "last", "list",
             "string", "int", "float", "abs", "tojson", "unique|list", "sort", "reverse|list",
             "join(',')", "join", "default('D')", "default('D', true)", "items|list", "round",
             "round(1)", "e", "replace('a', 'Z')", "select|list", "reject('none')|list",
             "map('string')|list", "tojson(indent=1)", "count", "min", "max", "batch(2)|list",
             "safe", "indent(2)"]
R_TESTS = ["defined", "none", "string", "number", "integer", "float", "mapping", "sequence",
           "iterable", "odd", "even", "divisibleby 2", "equalto 1", "in [1, 'a']", "lower",
           "upper", "true", "false", "boolean"]
R_METHODS = ["strip()", "split()", "split(',')", "upper()", "lower()", "startswith('H')",
             "endswith('d')", "find('l')", "replace('l', 'L')", "title()", "count('l')",
             "get('k')", "get('zz', 3)", "items()|list", "keys()|list", "values()|list"]


def random_expr(R, depth=0):
    def lit():
        c = R.randrange(9)
        if c == 0:
            return str(R.randrange(-5, 20))
        if c == 1:
            return R.choice(["0.5", "1.0", "2.25", "1e3", "-0.1", "3.0"])
        if c == 2:
            return repr(R.choice(["a", "ab c", "é", "", "x'y", 'q"', "A-b", " pad ", "1,2,3", "日本"]))
        if c == 3:
            return R.choice(["none", "true", "false"])
        if c == 4:
            return "[" + ", ".join(lit() for _ in range(R.randrange(4))) + "]"
        if c == 5:
            keys = R.sample(["a", "b", "c"], R.randrange(3))
            return "{" + ", ".join(f"{k!r}: {lit()}" for k in keys) + "}"
        if c == 6:
            return "(" + ", ".join(lit() for _ in range(R.randrange(1, 3))) + ",)"
        return R.choice(list(RANDOM_VARS))

    if depth > 3:
        return lit()
    c = R.randrange(12)
    sub = lambda: random_expr(R, depth + 1)
    if c < 3:
        return lit()
    if c == 3:
        return f"{sub()}|{R.choice(R_FILTERS)}"
    if c == 4:
        return f"{sub()} is {'not ' if R.random() < .3 else ''}{R.choice(R_TESTS)}"
    if c == 5:
        return f"({sub()} {R.choice(['+', '-', '*', '/', '//', '%', '**', '~'])} {sub()})"
    if c == 6:
        return f"({sub()} {R.choice(['==', '!=', '<', '>=', 'in', 'not in', 'and', 'or'])} {sub()})"
    if c == 7:
        return f"(not {sub()})"
    if c == 8:
        return f"{R.choice(['s', 'd', 'l', 'msgs[0]'])}.{R.choice(R_METHODS)}"
    if c == 9:
        return f"({sub()} if {sub()} else {sub()})"
    if c == 10:
        idx = R.choice(["0", "-1", "1:", ":2", "::-1", "1:3:2", "'k'", "n"])
        return f"{R.choice(['s', 'l', 'msgs', 'd'])}[{idx}]"
    return f"{R.choice(['l', 'msgs', 's', 'd'])}|{R.choice(['length', 'first', 'last', 'list|length'])}"


def random_structure(R, depth=0):
    ws = ["", " ", "  ", "\n", " \n", "\n  ", "\t", "\n\n", "x", "text ", " \t\n ", "\r\n", "a\n  "]
    sign = lambda: R.choice(["", "", "", "-", "+"])
    tag = lambda body: "{%" + sign() + " " + body + " " + sign() + "%}"
    var = lambda body: "{{" + R.choice(["", "", "-"]) + " " + body + " " + R.choice(["", "", "-"]) + "}}"
    sub = lambda: random_structure(R, depth + 1)
    parts = []
    for _ in range(R.randrange(1, 4)):
        parts.append(R.choice(ws))
        c = R.randrange(9)
        if c == 0 and depth < 3:
            cond = R.choice(["t", "z", "xs", "s == 'a b'"])
            els = tag("else") + sub() if R.random() < .5 else ""
            parts.append(tag("if " + cond) + sub() + els + tag("endif"))
        elif c == 1 and depth < 3:
            els = tag("else") + sub() if R.random() < .3 else ""
            parts.append(tag("for x in " + R.choice(["xs", "msgs", "[]", "e"])) + sub() + els +
                         tag("endfor"))
        elif c == 2:
            parts.append(tag("set y = " + R.choice(["1", "'q'", "xs|length"])))
        elif c == 3:
            parts.append("{#" + sign() + " c " + sign() + "#}")
        elif c == 4:
            parts.append(var(R.choice(["x", "y", "s", "loop.index", "xs|length", "'lit'"])))
        elif c == 5:
            parts.append(tag("raw") + R.choice(ws) + "{{ raw }}" + R.choice(ws) + tag("endraw"))
        elif c == 6 and depth < 3:
            parts.append(tag("macro m(a)") + sub() + tag("endmacro") + var("m(1)"))
        elif c == 7:
            parts.append(R.choice(ws) + R.choice(ws))
        else:
            parts.append(var("1"))
        parts.append(R.choice(ws))
    return "".join(parts)


def random_cases(env, n_expr=400, n_struct=250):
    R = random.Random(20261127)
    cases = []
    todo = [("{{ " + random_expr(R) + " }}") for _ in range(n_expr)]
    todo += [random_structure(R) for _ in range(n_struct)]
    for source in todo:
        case = {"template": source}
        try:
            ok, text = render(env, source, json.loads(json.dumps(RANDOM_VARS)))
        except jinja2.exceptions.TemplateSyntaxError as e:
            case["syntax_error"] = str(e)  # mlxr must fail with MLXR_ERR_FORMAT
            cases.append(case)
            continue
        if ok and " object at 0x" in text:
            continue  # Python prints an address (a generator): not reproducible
        case["out" if ok else "err"] = text
        cases.append(case)
    return cases


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = os.environ.get("MLXR_TESTDATA") or os.path.join(root, "..", "shared", "testdata")
    tdir = os.path.join(root, "tests", "template")
    os.environ["MLXR_TEMPLATE_NOW"] = NOW
    env = make_env()

    with open(os.path.join(tdir, "tokens.json"), encoding="utf-8") as f:
        tokens = json.load(f)
    convs = {}
    for p in sorted(glob.glob(os.path.join(tdir, "conversations", "*.json"))):
        with open(p, encoding="utf-8") as f:
            convs[os.path.basename(p)[:-5]] = json.load(f)

    out_dir = os.path.join(tdir, "expected")
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(os.path.join(out_dir, "*")):
        os.remove(old)
    n_ok = n_err = 0
    for tp in sorted(glob.glob(os.path.join(data, "templates", "*.jinja"))):
        name = os.path.basename(tp)[:-6]
        with open(tp, encoding="utf-8") as f:
            source = f.read()
        for cname, conv in convs.items():
            variables = dict(tokens.get(name, {}))
            variables.update(conv)
            ok, text = render(env, source, variables)
            ext = "txt" if ok else "err"
            with open(os.path.join(out_dir, f"{name}.{cname}.{ext}"), "w", encoding="utf-8",
                      newline="") as f:
                f.write(text)
            n_ok += ok
            n_err += not ok

    cli_dir = os.path.join(tdir, "expected_cli")
    os.makedirs(cli_dir, exist_ok=True)
    for old in glob.glob(os.path.join(cli_dir, "*")):
        os.remove(old)
    for model, cname in CLI_CASES:
        kv = gguf_kv(os.path.join(data, model))
        tokens_list = kv.get("tokenizer.ggml.tokens", [])
        variables = {}
        for key, var in (("tokenizer.ggml.bos_token_id", "bos_token"),
                         ("tokenizer.ggml.eos_token_id", "eos_token")):
            if key in kv and kv[key] < len(tokens_list):
                variables[var] = tokens_list[kv[key]]
        variables.update(convs[cname])
        ok, text = render(env, kv.get("tokenizer.chat_template", CHATML), variables)
        mname = os.path.basename(model)[:-5]
        with open(os.path.join(cli_dir, f"{mname}.{cname}.{'txt' if ok else 'err'}"), "w",
                  encoding="utf-8", newline="") as f:
            f.write(text)

    cases = []
    for source, variables in SNIPPETS:
        ok, text = render(env, source, variables)
        case = {"template": source, "vars": variables}
        case["out" if ok else "err"] = text
        cases.append(case)
    with open(os.path.join(tdir, "jinja_cases.json"), "w", encoding="utf-8", newline="") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    rcases = random_cases(env)
    with open(os.path.join(tdir, "random_cases.json"), "w", encoding="utf-8", newline="") as f:
        json.dump({"vars": RANDOM_VARS, "cases": rcases}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"templates: {n_ok} rendered, {n_err} raised; snippets: {len(cases)}", file=sys.stderr)


if __name__ == "__main__":
    main()
