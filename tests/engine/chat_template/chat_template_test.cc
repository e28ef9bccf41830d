// File: tests/engine/chat_template/chat_template_test.cc
// Unit tests of the Jinja interpreter: the features chat templates use, clear errors with line
// and column, limits, and robustness against malformed templates. Byte parity with transformers
// on real templates is checked by chat_template_parity_test.py.
#include "engine/chat_template/chat_template.h"

#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lil {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

absl::StatusOr<std::string> Render(std::string_view tmpl, const Json& ctx = Json::object(),
                                   const ChatRenderOptions& options = {}) {
  auto t = ChatTemplate::Parse(tmpl);
  if (!t.ok()) return t.status();
  return t->Render(ctx, options);
}

std::string R(std::string_view tmpl, const Json& ctx = Json::object()) {
  auto out = Render(tmpl, ctx);
  EXPECT_TRUE(out.ok()) << tmpl << " -> " << out.status();
  return out.ok() ? *out : "<error: " + std::string(out.status().message()) + ">";
}

std::string Error(std::string_view tmpl, const Json& ctx = Json::object()) {
  auto out = Render(tmpl, ctx);
  EXPECT_FALSE(out.ok()) << tmpl << " rendered " << (out.ok() ? *out : "");
  return out.ok() ? "" : std::string(out.status().message());
}

TEST(ChatTemplateTest, TextAndExpressions) {
  EXPECT_EQ(R("a{{ 1 + 2 }}b"), "a3b");
  EXPECT_EQ(R("{{ 'x' ~ 1 ~ none }}"), "x1None");
  EXPECT_EQ(R("{{ [1, 'a', none, true] }}"), "[1, 'a', None, True]");
  EXPECT_EQ(R("{{ {'k': 1.0} }}"), "{'k': 1.0}");
  EXPECT_EQ(R("{{ x }}|{{ x is defined }}"), "|False");  // undefined prints empty
}

TEST(ChatTemplateTest, PythonArithmetic) {
  EXPECT_EQ(R("{{ 7 / 2 }} {{ 6 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}"),
            "3.5 3.0 3 -4 2 1024 0.5");
  EXPECT_EQ(R("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ 1.5 * 2 }} {{ true + 1 }}"),
            "0.30000000000000004 1e+16 1e-05 3.0 2");
  EXPECT_EQ(R("{{ 'ab' * 2 }} {{ [1] + [2] }} {{ 'b' in 'abc' }} {{ 3 not in [1, 2] }}"), "abab [1, 2] True True");
  EXPECT_EQ(R("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1 != 2 }}"), "True False True");  // Python chains
  EXPECT_EQ(R("{{ '%s-%d-%r' % ('a', 3.9, 'q') }} {{ 'x=%(x)s' % {'x': 1} }} {{ '100%%' % () }}"), "a-3-'q' x=1 100%");
  EXPECT_THAT(Error("{{ 'no specs' % 1 }}"), HasSubstr("not all arguments converted"));
  EXPECT_THAT(Error("{{ 1 / 0 }}"), HasSubstr("division by zero"));
  EXPECT_THAT(Error("{{ 'a' + 1 }}"), HasSubstr("unsupported operand type(s) for +: 'str' and 'int'"));
  EXPECT_THAT(Error("{{ 9223372036854775807 + 1 }}"), HasSubstr("integer overflow"));
}

TEST(ChatTemplateTest, WhitespaceControlMatchesTransformersSettings) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks drops indentation before it.
  EXPECT_EQ(R("  {% if true %}\n  x\n  {% endif %}\ny"), "  x\ny");
  EXPECT_EQ(R("a  {%- if true -%}  b  {%- endif %}"), "ab");
  EXPECT_EQ(R("a {{- ' x ' -}} b"), "a x b");
  EXPECT_EQ(R("a\n  {{ 'v' }}\n"), "a\n  v");  // no lstrip for {{, one trailing newline dropped
  EXPECT_EQ(R("a {%+ if true %}b{% endif +%}\nc"), "a b\nc");
  EXPECT_EQ(R("x\r\n{# comment #}\r\ny"), "x\ny");
  EXPECT_EQ(R("{% raw %}{{ kept }}{% endraw %}"), "{{ kept }}");
}

TEST(ChatTemplateTest, ForLoops) {
  Json ctx = {{"m", Json::array({"a", "b", "c"})}};
  EXPECT_EQ(R("{% for x in m %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ x }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", ctx),
            "103aTrueFalse3;212bFalseFalse3;321cFalseTrue3;");
  EXPECT_EQ(R("{% for x in m[::-1] %}{{ x }}{% endfor %}|{% for x in m[1:] %}{{ x }}{% endfor %}", ctx), "cba|bc");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in m if x != 'b' %}{{ x }}{{ loop.length }}{% endfor %}", ctx), "a2c2");
  EXPECT_EQ(R("{% for i in range(9) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
            "023");
  EXPECT_EQ(R("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}{{ v }}{% endfor %}"), "a1b2");
}

TEST(ChatTemplateTest, ScopesAndNamespaces) {
  // Each for iteration starts from the outer value; namespace() carries state out of loops.
  EXPECT_EQ(R("{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}"), "01020");
  EXPECT_EQ(R("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"), "2");
  EXPECT_EQ(R("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"), "6");
  EXPECT_EQ(R("{% set a, b = 'xy' %}{{ b }}{{ a }}"), "yx");
  EXPECT_EQ(R("{% set t %} {{ 1 }} {% endset %}[{{ t }}]"), "[ 1 ]");
}

TEST(ChatTemplateTest, Macros) {
  EXPECT_EQ(R("{% macro m(a, b='B') %}<{{ a }}{{ b }}>{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}{{ m() }}"), "<1B><23><B>");
  EXPECT_THAT(Error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"), HasSubstr("takes not more than 1 argument"));
}

TEST(ChatTemplateTest, Filters) {
  Json ctx = {{"msgs", Json::array({{{"role", "user"}, {"content", " hi "}}, {{"role", "assistant"}, {"content", "yo"}}})}};
  EXPECT_EQ(R("{{ msgs[0].content | trim }}|{{ msgs | length }}|{{ 'aB' | upper }}{{ 'aB' | lower }}", ctx), "hi|2|ABab");
  EXPECT_EQ(R("{{ msgs | map(attribute='role') | join(',') }}", ctx), "user,assistant");
  EXPECT_EQ(R("{{ msgs | selectattr('role', 'equalto', 'user') | list | length }}", ctx), "1");
  EXPECT_EQ(R("{{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='content') | first }}", ctx), "yo");
  EXPECT_EQ(R("{{ x | default('d') }} {{ '' | default('d', true) }} {{ 'hello world' | title }} {{ 'x' | capitalize }}"),
            "d d Hello World X");
  EXPECT_EQ(R("{{ '4' | int + 1 }} {{ 'q' | int }} {{ [3, 1] | last }} {{ 'abc' | list }} {{ {'a': 1} | items | list }}"),
            "5 0 1 ['a', 'b', 'c'] [('a', 1)]");
  EXPECT_EQ(R("{{ 'a-b' | replace('-', '+') }} {{ 5 | string }}{{ '<&>' | e }}"), "a+b 5&lt;&amp;&gt;");
}

TEST(ChatTemplateTest, ToJsonMatchesPythonJsonDumps) {
  Json ctx = Json::parse(R"({"t": {"name": "f", "p": [1, 2.5, null, true, "é\n\""], "e": {}}})");
  EXPECT_EQ(R("{{ t | tojson }}", ctx), R"({"name": "f", "p": [1, 2.5, null, true, "é\n\""], "e": {}})");
  EXPECT_EQ(R("{{ [1, {'a': []}] | tojson(indent=2) }}"), "[\n  1,\n  {\n    \"a\": []\n  }\n]");
  EXPECT_EQ(R("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true, separators=(',', ':')) }}"), R"({"a":2,"b":1})");
  EXPECT_EQ(R("{{ 'é' | tojson(ensure_ascii=true) }}"), R"("\u00e9")");
}

TEST(ChatTemplateTest, Tests) {
  Json ctx = {{"s", "x"}, {"d", Json::object()}, {"n", 3}, {"f", 1.5}, {"z", nullptr}};
  EXPECT_EQ(R("{{ s is string }}{{ d is mapping }}{{ n is number }}{{ f is number }}{{ z is none }}{{ q is undefined }}{{ n is not none }}", ctx),
            "TrueTrueTrueTrueTrueTrueTrue");
  EXPECT_EQ(R("{{ n is equalto 3 }}{{ n is eq 4 }}{{ s is iterable }}{{ d is sequence }}{{ n is odd }}{{ true is true }}{{ 0 is false }}", ctx),
            "TrueFalseTrueTrueTrueTrueFalse");
}

TEST(ChatTemplateTest, StringAndDictMethods) {
  Json ctx = {{"c", "<think>\nplan\n</think>\n\nanswer"}, {"m", {{"role", "user"}}}};
  EXPECT_EQ(R("{{ c.split('</think>')[-1].lstrip('\\n') }}|{{ c.split('</think>')[0].split('<think>')[-1].strip('\\n') }}", ctx),
            "answer|plan");
  EXPECT_EQ(R("{{ c.startswith('<think>') }}{{ c.endswith(('x', 'answer')) }}{{ 'a b'.split() }}{{ 'héllo'.find('l') }}", ctx),
            "TrueTrue['a', 'b']2");
  EXPECT_EQ(R("{{ m.get('role') }}{{ m.get('x', 'd') }}{{ m.keys() | list }}{{ m['role'] }}{{ m.role }}", ctx),
            "userd['role']useruser");
  EXPECT_EQ(R("{{ '{} {name}'.format(1, name='n') }}"), "1 n");
}

TEST(ChatTemplateTest, UnicodeIndexingCountsCodePoints) {
  EXPECT_EQ(R("{{ 'héllo'[1] }}{{ 'héllo'[-1] }}{{ 'héllo'[1:3] }}{{ 'héllo' | length }}{{ '🎉x'[0] }}"), "éoél5🎉");
}

TEST(ChatTemplateTest, UndefinedAttributeAccessIsAnError) {
  EXPECT_EQ(R("{{ m.missing }}|{{ m.missing is defined }}", {{"m", Json::object()}}), "|False");
  EXPECT_THAT(Error("{{ m.missing.deeper }}", {{"m", Json::object()}}), HasSubstr("'dict object' has no attribute 'missing'"));
  EXPECT_THAT(Error("{{ nope.x }}"), HasSubstr("'nope' is undefined"));
  EXPECT_EQ(R("{{ none.x is defined }}"), "False");  // Jinja returns undefined for None attributes
}

TEST(ChatTemplateTest, RaiseExceptionBecomesAnErrorWithLocation) {
  auto out = Render("ok\n{% if true %}{{ raise_exception('roles must alternate') }}{% endif %}");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("line 2, column 17: raise_exception: roles must alternate"));
}

TEST(ChatTemplateTest, ParseErrorsNameLineAndColumn) {
  auto unclosed = ChatTemplate::Parse("a\n{% for m in messages %}\n{{ m }}\n");
  ASSERT_FALSE(unclosed.ok());
  EXPECT_THAT(unclosed.status().message(), HasSubstr("'for' block opened at line 2, column 1 is never closed"));
  auto unclosed_if = ChatTemplate::Parse("{% if x %}{% for y in z %}{% endfor %}");
  ASSERT_FALSE(unclosed_if.ok());
  EXPECT_THAT(unclosed_if.status().message(), HasSubstr("'if' block opened at line 1, column 1"));
  auto filter = ChatTemplate::Parse("x\n  {{ y | frobnicate }}");
  ASSERT_FALSE(filter.ok());
  EXPECT_THAT(filter.status().message(), HasSubstr("line 2, column 10: no filter named 'frobnicate'"));
  auto tag = ChatTemplate::Parse("{% frob %}");
  ASSERT_FALSE(tag.ok());
  EXPECT_THAT(tag.status().message(), HasSubstr("line 1, column 4: encountered unknown tag 'frob'"));
  auto string = ChatTemplate::Parse("{{ 'abc }}");
  ASSERT_FALSE(string.ok());
  EXPECT_THAT(string.status().message(), HasSubstr("line 1, column 4: unterminated string literal"));
  auto brace = ChatTemplate::Parse("{{ (1 + 2 }}");
  ASSERT_FALSE(brace.ok());
  EXPECT_THAT(brace.status().message(), HasSubstr("unexpected '}', expected ')'"));
  EXPECT_FALSE(ChatTemplate::Parse("{% break %}").ok());
  EXPECT_EQ(ChatTemplate::Parse("{% include 'x' %}").status().code(), absl::StatusCode::kUnimplemented);
}

TEST(ChatTemplateTest, StrftimeNowUsesTheInjectedClock) {
  ChatRenderOptions options;
  options.now_unix_seconds = 1700000000;  // 2023-11-14 in every time zone
  auto out = Render("{{ strftime_now('%Y-%m') }}", Json::object(), options);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "2023-11");
}

TEST(ChatTemplateTest, RenderChatPassesTokensAndNoneTools) {
  auto t = ChatTemplate::Parse(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}{{ tools is none }}{{ bos_token is defined }}");
  ASSERT_TRUE(t.ok()) << t.status();
  auto out = t->RenderChat({{"user", "hi"}, {"assistant", "yo"}}, true, "<s>", "</s>");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "<s><user>hi</s><assistant>yo</s><assistant>TrueTrue");
  auto no_bos = t->RenderChat({{"user", "hi"}}, false, "", "</s>");
  ASSERT_TRUE(no_bos.ok());
  EXPECT_EQ(*no_bos, "<user>hi</s>TrueFalse");  // an empty bos is not passed, as transformers does
  ChatTemplate copy = *t;
  EXPECT_EQ(*copy.Render(nlohmann::json{{"messages", nlohmann::json::array()}}), "FalseFalse");
}

TEST(ChatTemplateTest, LimitsStopRunawayTemplates) {
  ChatRenderOptions small;
  small.limits.max_output_bytes = 100;
  auto big = Render("{% for i in range(50) %}xxxxx{% endfor %}", Json::object(), small);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  auto doubling = Render("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}");
  EXPECT_EQ(doubling.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Render("{{ 'x' * 99999999999 }}").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").status().code(), absl::StatusCode::kResourceExhausted);
  ChatRenderOptions few_loops;
  few_loops.limits.max_loop_iterations = 10000;
  EXPECT_EQ(Render("{% for i in range(200) %}{% for j in range(200) %}{% endfor %}{% endfor %}", Json::object(), few_loops)
                .status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Render("{% set ns = namespace(l=[]) %}{% for i in range(999) %}{% set ns.l = [ns.l] %}{% endfor %}").status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(ChatTemplate::Parse("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{{ " + std::string(3000, '[') + " }}").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{{ " + std::string(3000, '-') + "1 }}").ok());
  EXPECT_TRUE(ChatTemplate::Parse("{{ " + std::string(3000, 'n') + " }}").ok());  // a long name is fine
  std::string deep_if;
  for (int i = 0; i < 1000; ++i) deep_if += "{% if true %}";
  EXPECT_FALSE(ChatTemplate::Parse(deep_if).ok());
  Json deep = Json::array();
  for (int i = 0; i < 1000; ++i) deep = Json::array({deep});
  EXPECT_FALSE(Render("{{ x }}", {{"x", deep}}).ok());
}

// Malformed templates must fail cleanly, never crash or hang: random splices of template pieces.
TEST(ChatTemplateTest, RandomTemplatesNeverCrash) {
  const std::vector<std::string> pieces = {
      "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", " for ", " in ", " if ", " endif ",
      " endfor ", " else ", " set ", " = ", " macro ", " endmacro ", "(", ")", "[", "]", "{", "}", "'s'",
      "\"d\"", "'", "messages", "m", ".", "|", " trim", " tojson", " is ", " not ", " defined", " and ",
      " or ", "1", "-1", "2.5", ",", ":", "::-1", " ~ ", " + ", " * ", " / ", " // ", " % ", " ** ", "loop",
      ".index", "namespace(", "ns.x", " raw ", " endraw ", "\n", "  ", "text", "é", "\xff", " break ",
      " continue ", "range(3)", "raise_exception('x')", " filter upper ", " endfilter ", " none "};
  std::mt19937 rng(1234);
  Json ctx = Json::parse(R"({"messages": [{"role": "user", "content": "hi"}], "m": [1, 2], "s": "x"})");
  int parsed = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string tmpl;
    int n = 1 + rng() % 24;
    for (int i = 0; i < n; ++i) tmpl += pieces[rng() % pieces.size()];
    auto t = ChatTemplate::Parse(tmpl);
    if (!t.ok()) {
      EXPECT_THAT(std::string(t.status().message()), HasSubstr("line ")) << tmpl;
      continue;
    }
    ++parsed;
    (void)t->Render(ctx);  // ok or a clean error
  }
  EXPECT_GT(parsed, 100);  // the generator reaches the evaluator, not only the parser
}

}  // namespace
}  // namespace lil
