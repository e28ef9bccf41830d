// File: tests/engine/chat_template/chat_template_test.cc
// Unit tests of the Jinja interpreter: features chat templates use, and clear errors.
#include "engine/chat_template/chat_template.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lil {
namespace {

std::string RenderOrDie(std::string_view tmpl, const nlohmann::ordered_json& ctx = nlohmann::ordered_json::object()) {
  auto t = ChatTemplate::Parse(tmpl);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return "<parse error>";
  auto out = t->Render(ctx);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "<render error>";
}

TEST(ChatTemplateTest, RendersTextAndExpressions) {
  EXPECT_EQ(RenderOrDie("a{{ 1 + 2 }}b"), "a3b");
}

}  // namespace
}  // namespace lil
