// File: tests/server/request_convert_test.cc
// GenerateRequest validation and conversion: every range in the .proto is enforced with an
// INVALID_ARGUMENT naming the field and value; unset fields take the server defaults.
#include "server/request_convert.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lil {
namespace {
namespace v1 = ::lilserve::v1;
using ::testing::AllOf;
using ::testing::HasSubstr;

RequestLimits Limits() {
  RequestLimits l;
  l.default_max_tokens = 77;
  l.max_tokens_limit = 1000;
  l.max_prompt_chars = 100;
  l.max_model_len = 64;
  l.vocab_size = 500;
  l.default_monitor.mode = MonitorMode::kShadow;
  l.default_monitor.interval_tokens = 123;
  l.default_sparse.mode = SparseMode::kQuest;
  l.default_sparse.budget_tokens = 32;
  return l;
}

// One token per byte; chat = "role:content|" per message.
PromptCodec Codec() {
  PromptCodec c;
  c.encode = [](std::string_view text, bool add_special) {
    std::vector<TokenId> ids;
    if (add_special) ids.push_back(1);
    for (unsigned char ch : text) ids.push_back(ch);
    return ids;
  };
  c.render_chat = [](const std::vector<ChatMessage>& m) -> absl::StatusOr<std::string> {
    std::string s;
    for (const auto& x : m) s += x.role + ":" + x.content + "|";
    return s;
  };
  return c;
}

absl::StatusOr<SchedulerRequest> Convert(const v1::GenerateRequest& r) {
  return ConvertRequest(r, Limits(), Codec());
}

void ExpectInvalid(const v1::GenerateRequest& r, const std::string& field, const std::string& value) {
  auto s = Convert(r);
  ASSERT_FALSE(s.ok()) << r.DebugString();
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), AllOf(HasSubstr(field), HasSubstr(value)));
}

TEST(RequestConvert, UnsetFieldsTakeServerDefaults) {
  v1::GenerateRequest r;
  r.set_prompt("hi");
  auto s = Convert(r);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->prompt, (std::vector<TokenId>{1, 'h', 'i'}));
  EXPECT_EQ(s->stopping.max_tokens, 77);
  EXPECT_FLOAT_EQ(s->sampling.temperature, 1.0f);
  EXPECT_FALSE(s->sampling.seed.has_value());
  EXPECT_EQ(s->monitor.mode, MonitorMode::kShadow);
  EXPECT_EQ(s->monitor.interval_tokens, 123);
  EXPECT_FALSE(s->sparse.has_value());  // the scheduler's default applies
}

TEST(RequestConvert, SetFieldsAreCopied) {
  v1::GenerateRequest r;
  r.mutable_token_ids()->add_ids(5);
  r.mutable_token_ids()->add_ids(499);
  r.mutable_sampling()->set_temperature(0);
  r.mutable_sampling()->set_top_k(40);
  r.mutable_sampling()->set_seed(9);
  r.mutable_stopping()->set_max_tokens(10);
  r.mutable_stopping()->add_stop("END");
  r.mutable_stopping()->add_stop_token_ids(7);
  r.mutable_stopping()->set_time_limit_ms(250);
  r.mutable_sparse()->set_mode(v1::SINK);
  r.mutable_sparse()->set_window_tokens(16);
  r.mutable_monitor()->set_mode(v1::ENFORCE);
  r.mutable_monitor()->set_min_gain_bytes(5);
  r.set_priority(3);
  auto s = Convert(r);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->prompt, (std::vector<TokenId>{5, 499}));
  EXPECT_EQ(s->sampling.temperature, 0.0f);
  EXPECT_EQ(s->sampling.top_k, 40);
  EXPECT_EQ(s->sampling.seed, 9u);
  EXPECT_EQ(s->stopping.max_tokens, 10);
  EXPECT_EQ(s->stopping.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(s->stopping.stop_token_ids, std::vector<TokenId>{7});
  EXPECT_EQ(s->stopping.time_limit_ms, 250);
  ASSERT_TRUE(s->sparse.has_value());
  EXPECT_EQ(s->sparse->mode, SparseMode::kSink);
  EXPECT_EQ(s->sparse->window_tokens, 16);
  EXPECT_EQ(s->sparse->budget_tokens, 32);  // unset: the server default
  EXPECT_EQ(s->monitor.mode, MonitorMode::kEnforce);
  EXPECT_EQ(s->monitor.min_gain_bytes, 5);
  EXPECT_EQ(s->monitor.interval_tokens, 123);
  EXPECT_EQ(s->priority, 3);
}

TEST(RequestConvert, ChatMessagesAreRenderedWithoutExtraSpecialTokens) {
  v1::GenerateRequest r;
  auto* m = r.mutable_messages()->add_messages();
  m->set_role("user");
  m->set_content("ok");
  auto s = Convert(r);
  ASSERT_TRUE(s.ok()) << s.status();
  const std::string want = "user:ok|";
  EXPECT_EQ(s->prompt, std::vector<TokenId>(want.begin(), want.end()));
}

TEST(RequestConvert, EveryRangeIsEnforced) {
  auto base = [] {
    v1::GenerateRequest r;
    r.set_prompt("x");
    return r;
  };
  { auto r = base(); r.mutable_sampling()->set_temperature(-1); ExpectInvalid(r, "sampling.temperature", "-1"); }
  { auto r = base(); r.mutable_sampling()->set_temperature(NAN); ExpectInvalid(r, "sampling.temperature", "nan"); }
  { auto r = base(); r.mutable_sampling()->set_top_k(501); ExpectInvalid(r, "sampling.top_k", "501"); }
  { auto r = base(); r.mutable_sampling()->set_top_p(0); ExpectInvalid(r, "sampling.top_p", "got 0"); }
  { auto r = base(); r.mutable_sampling()->set_top_p(1.5); ExpectInvalid(r, "sampling.top_p", "1.5"); }
  { auto r = base(); r.mutable_sampling()->set_min_p(1); ExpectInvalid(r, "sampling.min_p", "got 1"); }
  { auto r = base(); r.mutable_sampling()->set_repetition_penalty(0); ExpectInvalid(r, "repetition_penalty", "got 0"); }
  { auto r = base(); r.mutable_sampling()->set_logprobs(21); ExpectInvalid(r, "sampling.logprobs", "21"); }
  { auto r = base(); r.mutable_stopping()->set_max_tokens(0); ExpectInvalid(r, "stopping.max_tokens", "got 0"); }
  { auto r = base(); r.mutable_stopping()->set_max_tokens(1001); ExpectInvalid(r, "stopping.max_tokens", "1001"); }
  { auto r = base(); r.mutable_stopping()->set_min_tokens(78); ExpectInvalid(r, "stopping.min_tokens", "78"); }
  { auto r = base(); for (int i = 0; i < 17; ++i) r.mutable_stopping()->add_stop("s"); ExpectInvalid(r, "stopping.stop", "17"); }
  { auto r = base(); r.mutable_stopping()->add_stop(""); ExpectInvalid(r, "stopping.stop[0]", "got 0"); }
  { auto r = base(); r.mutable_stopping()->add_stop(std::string(257, 'a')); ExpectInvalid(r, "stopping.stop[0]", "257"); }
  { auto r = base(); r.mutable_stopping()->add_stop_token_ids(500); ExpectInvalid(r, "stopping.stop_token_ids[0]", "500"); }
  { auto r = base(); r.mutable_stopping()->set_time_limit_ms(-5); ExpectInvalid(r, "stopping.time_limit_ms", "-5"); }
  { auto r = base(); r.mutable_sparse()->set_mode(static_cast<v1::SparseMode>(9)); ExpectInvalid(r, "sparse.mode", "9"); }
  { auto r = base(); r.mutable_sparse()->set_budget_tokens(0); ExpectInvalid(r, "sparse.budget_tokens", "got 0"); }
  { auto r = base(); r.mutable_sparse()->set_window_tokens(65); ExpectInvalid(r, "sparse.window_tokens", "65"); }
  { auto r = base(); r.mutable_monitor()->set_mode(static_cast<v1::MonitorMode>(7)); ExpectInvalid(r, "monitor.mode", "7"); }
  { auto r = base(); r.mutable_monitor()->set_interval_tokens(15); ExpectInvalid(r, "monitor.interval_tokens", "15"); }
  { auto r = base(); r.mutable_monitor()->set_min_gain_bytes(-1); ExpectInvalid(r, "monitor.min_gain_bytes", "-1"); }
  { auto r = base(); r.mutable_monitor()->set_conclusion_max_tokens(-1); ExpectInvalid(r, "conclusion_max_tokens", "-1"); }
  { auto r = base(); r.set_request_id(std::string(129, 'r')); ExpectInvalid(r, "request_id", "129"); }
}

TEST(RequestConvert, InputsAreChecked) {
  v1::GenerateRequest none;
  ExpectInvalid(none, "one of prompt, messages or token_ids", "");
  v1::GenerateRequest empty;
  empty.set_prompt("");
  ExpectInvalid(empty, "prompt", "empty");
  v1::GenerateRequest big;
  big.set_prompt(std::string(101, 'a'));
  ExpectInvalid(big, "prompt", "101");
  v1::GenerateRequest ids;
  ids.mutable_token_ids()->add_ids(3);
  ids.mutable_token_ids()->add_ids(-1);
  ExpectInvalid(ids, "token_ids.ids[1]", "-1");
  v1::GenerateRequest role;
  role.mutable_messages()->add_messages()->set_content("x");
  ExpectInvalid(role, "messages[0].role", "empty");
}

TEST(RequestConvert, PromptMustFitTheContext) {
  v1::GenerateRequest r;
  for (int i = 0; i < 63; ++i) r.mutable_token_ids()->add_ids(1);
  EXPECT_TRUE(Convert(r).ok());
  r.mutable_token_ids()->add_ids(1);  // 64 tokens leave no room in a 64-token context
  ExpectInvalid(r, "max_model_len", "64");
}

TEST(RequestConvert, UnaryRequestsTakeTheSameLimits) {
  v1::TokenizeRequest t;
  t.set_text(std::string(100, 'a'));
  EXPECT_TRUE(ValidateTokenize(t, Limits()).ok());
  t.set_text(std::string(101, 'a'));
  auto s = ValidateTokenize(t, Limits());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("text has 101 bytes"), HasSubstr("--max-prompt-chars=100")));
  v1::AbortRequest a;
  EXPECT_THAT(std::string(ValidateAbort(a, Limits()).message()), HasSubstr("request_id is empty"));
  a.set_request_id(std::string(128, 'r'));
  EXPECT_TRUE(ValidateAbort(a, Limits()).ok());
  a.set_request_id(std::string(129, 'r'));
  EXPECT_THAT(std::string(ValidateAbort(a, Limits()).message()), HasSubstr("request_id must be at most 128 bytes, got 129"));
}

// Requests never reach the filesystem: a path or a Jinja include in a message is data for
// the template, rendered as text (the codec here stands in for the model's; the real chat
// template refuses include/import at parse time, see chat_template_test and the fuzzer).
TEST(RequestConvert, PathsInRequestsAreJustText) {
  v1::GenerateRequest r;
  auto* m = r.mutable_messages()->add_messages();
  m->set_role("user");
  m->set_content("{% include '/etc/passwd' %}");
  r.set_request_id("../../etc/passwd");
  auto s = Convert(r);
  ASSERT_TRUE(s.ok()) << s.status();
  const std::string want = "user:{% include '/etc/passwd' %}|";
  EXPECT_EQ(s->prompt, std::vector<TokenId>(want.begin(), want.end()));
}

TEST(RequestConvert, FinishReasonsMapOneToOne) {
  std::set<int> seen;
  for (int i = 0; i < kNumFinishReasons; ++i) {
    seen.insert(ToProto(static_cast<FinishReason>(i)));
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kNumFinishReasons));
  EXPECT_EQ(ToProto(FinishReason::kEarlyStop), v1::EARLY_STOP);
  EXPECT_EQ(ToProto(FinishReason::kDeadline), v1::DEADLINE);
  EXPECT_EQ(ToProto(FinishReason::kLength), v1::LENGTH);
}

TEST(RequestConvert, OutputsBecomeMessages) {
  RequestOutput out;
  out.new_tokens = {4, 5};
  out.logprobs = {-0.5f, -1.5f};
  out.text = "ab";
  v1::Chunk chunk;
  ASSERT_TRUE(FillChunk(out, true, &chunk));
  EXPECT_EQ(chunk.token_ids_size(), 2);
  EXPECT_EQ(chunk.text(), "ab");
  ASSERT_EQ(chunk.logprobs_size(), 2);
  EXPECT_FLOAT_EQ(chunk.logprobs(1).logprob(), -1.5f);
  v1::Chunk empty;
  EXPECT_FALSE(FillChunk(RequestOutput{}, false, &empty));

  out.finished = true;
  out.finish_reason = FinishReason::kEarlyStop;
  out.usage = {10, 32, 4, 68};
  out.monitor_stop_at = 32;
  out.monitor_trace = {{16, 100, 100}, {32, 101, 1}};
  v1::Finished f;
  FillFinished(out, &f);
  EXPECT_EQ(f.reason(), v1::EARLY_STOP);
  EXPECT_EQ(f.usage().prompt_tokens(), 10);
  EXPECT_EQ(f.usage().completion_tokens(), 32);
  EXPECT_EQ(f.usage().cached_tokens(), 4);
  EXPECT_EQ(f.usage().tokens_saved(), 68);
  EXPECT_EQ(f.monitor_stop_at(), 32);
  ASSERT_EQ(f.monitor_trace_size(), 2);
  EXPECT_EQ(f.monitor_trace(1).gain_bytes(), 1);
  out.monitor_stop_at.reset();
  FillFinished(out, &f);
  EXPECT_EQ(f.monitor_stop_at(), -1);
}

}  // namespace
}  // namespace lil
