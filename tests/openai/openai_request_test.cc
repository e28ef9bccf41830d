// File: tests/openai/openai_request_test.cc
// The OpenAI API's JSON layer without a network or model: bodies become the GenerateRequest a
// gRPC client would send, bad fields are refused naming the OpenAI field (also for errors that
// request_convert reports under gRPC names), and outputs become OpenAI objects and SSE events.
#include "server/openai_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/openai_response.h"
#include "server/request_convert.h"

namespace lil {
namespace {
namespace v1 = ::lilserve::v1;
using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

OpenAiRequest Parse(OpenAiEndpoint ep, const std::string& body) {
  OpenAiRequest r;
  OpenAiError e;
  EXPECT_TRUE(ParseOpenAiRequest(ep, body, &r, &e)) << body << ": " << e.message;
  return r;
}

OpenAiError ParseError(OpenAiEndpoint ep, const std::string& body) {
  OpenAiRequest r;
  OpenAiError e;
  EXPECT_FALSE(ParseOpenAiRequest(ep, body, &r, &e)) << body << " was accepted";
  return e;
}

constexpr auto kCompletions = OpenAiEndpoint::kCompletions;
constexpr auto kChat = OpenAiEndpoint::kChat;

TEST(OpenAiRequestTest, CompletionFieldsBecomeTheGrpcRequest) {
  OpenAiRequest r = Parse(kCompletions, R"({
    "model": "m", "prompt": "Hello", "max_tokens": 12, "temperature": 0.5, "top_p": 0.9,
    "seed": -3, "stop": "\n\n", "logprobs": 2, "stream": true,
    "stream_options": {"include_usage": true}, "n": 1, "user": "u1", "presence_penalty": 0,
    "top_k": -1, "min_p": 0.1, "repetition_penalty": 1.1, "min_tokens": 2, "ignore_eos": true,
    "stop_token_ids": [7, 8], "time_limit_ms": 500, "priority": 3, "return_token_ids": true,
    "sparse": {"mode": "sink", "window_tokens": 64, "sink_tokens": 4},
    "monitor": {"mode": "ENFORCE", "interval_tokens": 32, "min_gain_bytes": 50,
                "conclusion_text": "Answer:", "conclusion_max_tokens": 8},
    "echo": false, "suffix": null, "logit_bias": {}})");
  const v1::GenerateRequest& g = r.generate;
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(g.prompt(), "Hello");
  EXPECT_EQ(g.stopping().max_tokens(), 12);
  EXPECT_FLOAT_EQ(g.sampling().temperature(), 0.5f);
  EXPECT_FLOAT_EQ(g.sampling().top_p(), 0.9f);
  EXPECT_EQ(g.sampling().seed(), static_cast<uint64_t>(int64_t{-3}));
  EXPECT_EQ(g.sampling().top_k(), 0);  // vLLM's -1 is our 0 (off)
  EXPECT_TRUE(g.sampling().has_logprobs());
  EXPECT_EQ(g.sampling().logprobs(), 2);
  EXPECT_TRUE(r.logprobs);
  ASSERT_EQ(g.stopping().stop_size(), 1);
  EXPECT_EQ(g.stopping().stop(0), "\n\n");
  EXPECT_TRUE(g.stopping().ignore_eos());
  EXPECT_EQ(g.stopping().min_tokens(), 2);
  EXPECT_EQ(g.stopping().stop_token_ids_size(), 2);
  EXPECT_EQ(g.stopping().time_limit_ms(), 500);
  EXPECT_EQ(g.priority(), 3);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.return_token_ids);
  EXPECT_EQ(g.sparse().mode(), v1::SINK);
  EXPECT_EQ(g.sparse().window_tokens(), 64);
  EXPECT_EQ(g.sparse().sink_tokens(), 4);
  EXPECT_EQ(g.monitor().mode(), v1::ENFORCE);
  EXPECT_EQ(g.monitor().interval_tokens(), 32);
  EXPECT_EQ(g.monitor().min_gain_bytes(), 50);
  EXPECT_EQ(g.monitor().conclusion_text(), "Answer:");
  EXPECT_EQ(g.monitor().conclusion_max_tokens(), 8);
}

TEST(OpenAiRequestTest, UnsetAndNullFieldsStayUnset) {
  OpenAiRequest r =
      Parse(kCompletions, R"({"prompt": "x", "temperature": null, "max_tokens": null})");
  EXPECT_FALSE(r.generate.sampling().has_temperature());
  EXPECT_FALSE(r.generate.stopping().has_max_tokens());
  EXPECT_FALSE(r.generate.sampling().has_logprobs());
  EXPECT_FALSE(r.stream);
}

TEST(OpenAiRequestTest, PromptForms) {
  EXPECT_EQ(Parse(kCompletions, R"({"prompt": ["one"]})").generate.prompt(), "one");
  OpenAiRequest ids = Parse(kCompletions, R"({"prompt": [5, 6, 7]})");
  EXPECT_THAT(ids.generate.token_ids().ids(), ::testing::ElementsAre(5, 6, 7));
  OpenAiRequest nested = Parse(kCompletions, R"({"prompt": [[9, 10]]})");
  EXPECT_THAT(nested.generate.token_ids().ids(), ::testing::ElementsAre(9, 10));
  EXPECT_EQ(ParseError(kCompletions, R"({"prompt": ["a", "b"]})").param, "prompt");
  EXPECT_EQ(ParseError(kCompletions, R"({"prompt": [1, "b"]})").param, "prompt[1]");
  EXPECT_EQ(ParseError(kCompletions, R"({"prompt": 5})").param, "prompt");
  EXPECT_EQ(ParseError(kCompletions, R"({"max_tokens": 5})").param, "prompt");  // missing
}

TEST(OpenAiRequestTest, ChatMessages) {
  OpenAiRequest r = Parse(kChat, R"({"messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
       "name": "x"},
      {"role": "assistant", "content": null, "tool_calls": []}],
    "max_completion_tokens": 9, "max_tokens": 50, "logprobs": true, "top_logprobs": 3})");
  const auto& m = r.generate.messages().messages();
  ASSERT_EQ(m.size(), 3);
  EXPECT_EQ(m[0].role(), "system");
  EXPECT_EQ(m[1].content(), "a\nb");
  EXPECT_EQ(m[2].content(), "");
  EXPECT_EQ(r.generate.stopping().max_tokens(), 9);  // max_completion_tokens wins
  EXPECT_EQ(r.max_tokens_field, "max_completion_tokens");
  EXPECT_EQ(r.generate.sampling().logprobs(), 3);
  // Either order.
  OpenAiRequest r2 = Parse(kChat, R"({"max_tokens": 50, "max_completion_tokens": 9,
                                      "messages": [{"role": "user", "content": "x"}]})");
  EXPECT_EQ(r2.generate.stopping().max_tokens(), 9);
  // logprobs false: no logprobs at all.
  EXPECT_FALSE(
      Parse(kChat, R"({"messages": [], "logprobs": false})").generate.sampling().has_logprobs());
}

TEST(OpenAiRequestTest, BadFieldsAreNamed) {
  struct Case {
    OpenAiEndpoint ep;
    const char* body;
    const char* param;
    const char* message;
  };
  const Case cases[] = {
      {kCompletions, R"({"prompt": "x", "n": 2})", "n", "n must be 1"},
      {kCompletions, R"({"prompt": "x", "best_of": 3})", "best_of", "best_of must be 1"},
      {kCompletions, R"({"prompt": "x", "max_token": 3})", "max_token",
       "unrecognized request argument supplied: max_token"},
      {kCompletions, R"({"prompt": "x", "temperature": "hot"})", "temperature",
       "temperature must be a number, got \"hot\""},
      {kCompletions, R"({"prompt": "x", "max_tokens": 2.5})", "max_tokens",
       "max_tokens must be an integer"},
      {kCompletions, R"({"prompt": "x", "max_tokens": 10000000000})", "max_tokens", "out of range"},
      {kCompletions, R"({"prompt": "x", "stream": "yes"})", "stream",
       "stream must be true or false"},
      {kCompletions, R"({"prompt": "x", "stop": [1]})", "stop[0]", "stop[0] must be a string"},
      {kCompletions, R"({"prompt": "x", "echo": true})", "echo", "echo is not supported"},
      {kCompletions, R"({"prompt": "x", "frequency_penalty": 0.5})", "frequency_penalty",
       "not supported"},
      {kCompletions, R"({"prompt": "x", "logit_bias": {"5": 1}})", "logit_bias", "not supported"},
      {kCompletions, R"({"prompt": "x", "sparse": {"mode": "bogus"}})", "sparse.mode",
       "sparse.mode must be dense, sink, quest or h2o"},
      {kCompletions, R"({"prompt": "x", "sparse": {"budget": 5}})", "sparse.budget",
       "unrecognized field sparse.budget"},
      {kCompletions, R"({"prompt": "x", "monitor": {"mode": "loud"}})", "monitor.mode",
       "monitor.mode must be off, enforce"},
      {kCompletions, R"({"prompt": "x", "monitor": {"interval": 5}})", "monitor.interval",
       "unrecognized field monitor.interval"},
      {kCompletions, R"({"prompt": "x", "monitor": "enforce"})", "monitor",
       "monitor must be an object"},
      {kCompletions, R"({"prompt": "x", "stream_options": {"usage": true}})",
       "stream_options.usage", "unrecognized"},
      {kCompletions, R"({"prompt": "x", "max_completion_tokens": 5})", "max_completion_tokens",
       "unrecognized"},
      {kChat, R"({"prompt": "x"})", "prompt", "unrecognized request argument supplied: prompt"},
      {kChat, R"({"max_tokens": 3})", "messages", "messages is required"},
      {kChat, R"({"messages": {"role": "user"}})", "messages", "messages must be a list"},
      {kChat, R"({"messages": [{"content": "x"}]})", "messages[0].role",
       "messages[0].role is required"},
      {kChat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content[0].type", "is not supported (only \"text\")"},
      {kChat, R"({"messages": [{"role": "user", "content": "x", "tool_calls": [{"id": 1}]}]})",
       "messages[0].tool_calls", "not supported"},
      {kChat, R"({"messages": [], "top_logprobs": 2})", "top_logprobs",
       "top_logprobs requires logprobs: true"},
      {kChat, R"({"messages": [], "tools": [{"type": "function"}]})", "tools",
       "tools is not supported"},
      {kChat, R"({"messages": [], "response_format": {"type": "json_object"}})", "response_format",
       "not supported"},
      {kChat, R"({"messages": [], "logprobs": 1})", "logprobs", "logprobs must be true or false"},
  };
  for (const Case& c : cases) {
    OpenAiError e = ParseError(c.ep, c.body);
    EXPECT_EQ(e.http_status, 400) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.message;
    EXPECT_THAT(e.message, HasSubstr(c.message)) << c.body;
  }
  OpenAiError bad_json = ParseError(kCompletions, "{\"prompt\": ");
  EXPECT_THAT(bad_json.message, StartsWith("the request body is not valid JSON"));
  EXPECT_EQ(ParseError(kCompletions, "[1, 2]").message, "the request body must be a JSON object");
}

RequestLimits Limits() {
  RequestLimits l;
  l.max_tokens_limit = 1000;
  l.max_model_len = 64;
  l.vocab_size = 500;
  return l;
}

PromptCodec Codec() {
  PromptCodec c;
  c.encode = [](std::string_view text, bool) {
    return std::vector<TokenId>(text.size(), 7);  // one token per byte
  };
  c.render_chat = [](const std::vector<ChatMessage>& m) -> absl::StatusOr<std::string> {
    std::string s;
    for (const auto& x : m) s += x.role + ":" + x.content + "|";
    return s;
  };
  return c;
}

// request_convert's ranges, under the OpenAI names.
OpenAiError ConvertError(OpenAiEndpoint ep, const std::string& body) {
  OpenAiRequest r = Parse(ep, body);
  auto converted = ConvertRequest(r.generate, Limits(), Codec());
  EXPECT_FALSE(converted.ok()) << body;
  return ToOpenAiError(converted.status(), &r);
}

TEST(OpenAiRequestTest, ConvertErrorsUseOpenAiNames) {
  struct Case {
    OpenAiEndpoint ep;
    const char* body;
    const char* param;
    const char* message;
  };
  const Case cases[] = {
      {kCompletions, R"({"prompt": "x", "top_p": 1.5})", "top_p",
       "top_p must be in (0, 1], got 1.5"},
      {kCompletions, R"({"prompt": "x", "temperature": -1})", "temperature",
       "temperature must be in [0, 100], got -1"},
      {kCompletions, R"({"prompt": "x", "max_tokens": 0})", "max_tokens",
       "max_tokens must be in [1, 1000], got 0"},
      {kChat, R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 5000})",
       "max_completion_tokens", "max_completion_tokens must be in [1, 1000], got 5000"},
      {kCompletions, R"({"prompt": "x", "logprobs": 50})", "logprobs",
       "logprobs must be in [0, 20], got 50"},
      {kChat,
       R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})",
       "top_logprobs", "top_logprobs must be in [0, 20], got 21"},
      {kCompletions,
       R"({"prompt": "x", "stop": ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]})",
       "stop", "stop has 17 strings, at most 16 allowed"},
      {kCompletions, R"({"prompt": "x", "stop": ""})", "stop[0]",
       "stop[0] must be 1..256 bytes, got 0"},
      {kCompletions, R"({"prompt": "x", "stop_token_ids": [900]})", "stop_token_ids[0]",
       "stop_token_ids[0] must be in [0, 500)"},
      {kCompletions, R"({"prompt": [1, 900]})", "prompt[1]",
       "prompt[1] must be in [0, 500), got 900"},
      {kCompletions, R"({"prompt": ""})", "prompt", "prompt is empty"},
      {kChat, R"({"messages": []})", "messages", "messages is empty"},
      {kChat, R"({"messages": [{"role": ""}]})", "messages[0].role", "messages[0].role is empty"},
      {kCompletions, R"({"prompt": "x", "monitor": {"interval_tokens": 1}})",
       "monitor.interval_tokens", "monitor.interval_tokens must be in [16, 100000], got 1"},
      {kCompletions, R"({"prompt": "x", "sparse": {"budget_tokens": 0}})", "sparse.budget_tokens",
       "sparse.budget_tokens must be in [1, 64], got 0"},
      {kCompletions,
       R"({"prompt": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})",
       "prompt", "the prompt has 77 tokens; the model's context (max_model_len) is 64 tokens"},
  };
  for (const Case& c : cases) {
    OpenAiError e = ConvertError(c.ep, c.body);
    EXPECT_EQ(e.http_status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.message;
    EXPECT_THAT(e.message, HasSubstr(c.message)) << c.body;
  }
}

TEST(OpenAiRequestTest, StatusCodes) {
  EXPECT_EQ(
      ToOpenAiError(absl::ResourceExhaustedError("the waiting queue is full"), nullptr).http_status,
      429);
  EXPECT_EQ(ToOpenAiError(absl::UnavailableError("draining"), nullptr).http_status, 503);
  EXPECT_EQ(ToOpenAiError(absl::UnauthenticatedError("x"), nullptr).http_status, 401);
  EXPECT_EQ(ToOpenAiError(absl::AlreadyExistsError("x"), nullptr).http_status, 409);
  EXPECT_EQ(ToOpenAiError(absl::InternalError("x"), nullptr).type, "server_error");
  // The scheduler's own check, engine side.
  OpenAiError e =
      ToOpenAiError(absl::InvalidArgumentError("request 12: prompt has 9 tokens"), nullptr);
  EXPECT_EQ(e.message, "prompt has 9 tokens");
  EXPECT_EQ(e.param, "prompt");
  json body = json::parse(OpenAiErrorBody(e));
  EXPECT_EQ(body["error"]["param"], "prompt");
  EXPECT_TRUE(body["error"]["code"].is_null());
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
}

RequestOutput Finished(FinishReason reason, int32_t completion, int32_t saved) {
  RequestOutput out;
  out.finished = true;
  out.finish_reason = reason;
  out.usage.prompt_tokens = 5;
  out.usage.completion_tokens = completion;
  out.usage.cached_tokens = 2;
  out.usage.tokens_saved = saved;
  return out;
}

TEST(OpenAiResponseTest, FinishReasons) {
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kStop), "stop");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kStopSequence), "stop");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kLength), "length");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kEarlyStop), "early_stop");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kDeadline), "deadline");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kCancelled), "cancelled");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kAborted), "aborted");
}

TEST(OpenAiResponseTest, NonStreamingCompletion) {
  OpenAiResponder::Options o;
  o.id = "cmpl-r1";
  o.request_id = "r1";
  o.model = "m";
  OpenAiResponder responder(o);
  RequestOutput all = Finished(FinishReason::kEarlyStop, 40, 60);
  all.text = "hello";
  all.new_tokens = {1, 2};
  all.monitor_stop_at = 40;
  all.monitor_trace = {{16, 100, 100}, {32, 110, 10}};
  json r = json::parse(responder.Response(all));
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["id"], "cmpl-r1");
  EXPECT_EQ(r["choices"][0]["text"], "hello");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "early_stop");
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["usage"]["completion_tokens"], 40);
  EXPECT_EQ(r["usage"]["total_tokens"], 45);
  EXPECT_EQ(r["usage"]["tokens_saved"], 60);
  EXPECT_EQ(r["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
  EXPECT_EQ(r["lilserve"]["finish_reason"], "early_stop");
  EXPECT_EQ(r["lilserve"]["monitor_stop_at"], 40);
  EXPECT_EQ(r["lilserve"]["monitor_trace"].size(), 2u);
}

std::vector<json> Events(const std::string& sse, bool* done) {
  std::vector<json> out;
  *done = false;
  size_t pos = 0;
  while (pos < sse.size()) {
    const size_t end = sse.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << sse;
    const std::string ev = sse.substr(pos, end - pos);
    EXPECT_THAT(ev, StartsWith("data: "));
    const std::string data = ev.substr(6);
    if (data == "[DONE]") {
      *done = true;
    } else {
      EXPECT_FALSE(*done) << "event after [DONE]";
      out.push_back(json::parse(data));
    }
    pos = end + 2;
  }
  return out;
}

TEST(OpenAiResponseTest, ChatStreamWithUsage) {
  OpenAiResponder::Options o;
  o.endpoint = OpenAiEndpoint::kChat;
  o.id = "chatcmpl-r2";
  o.include_usage = true;
  OpenAiResponder responder(o);
  bool done = false;
  std::vector<json> start = Events(responder.StreamStart(), &done);
  ASSERT_EQ(start.size(), 1u);
  EXPECT_EQ(start[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(start[0]["choices"][0]["delta"]["role"], "assistant");
  RequestOutput held;  // tokens whose text is held back make no chunk
  held.new_tokens = {4};
  EXPECT_EQ(responder.StreamChunk(held), "");
  RequestOutput mid;
  mid.text = "Hi";
  mid.new_tokens = {5};
  std::vector<json> m = Events(responder.StreamChunk(mid), &done);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_FALSE(done);
  EXPECT_EQ(m[0]["choices"][0]["delta"]["content"], "Hi");
  EXPECT_TRUE(m[0]["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(m[0].contains("usage") && m[0]["usage"].is_null());
  RequestOutput last = Finished(FinishReason::kStopSequence, 3, 0);
  last.stop_match = "\n";
  std::vector<json> end = Events(responder.StreamChunk(last), &done);
  EXPECT_TRUE(done);
  ASSERT_EQ(end.size(), 2u);
  EXPECT_EQ(end[0]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(end[0]["choices"][0]["stop_reason"], "\n");
  EXPECT_TRUE(end[1]["choices"].empty());
  EXPECT_EQ(end[1]["usage"]["completion_tokens"], 3);
  EXPECT_EQ(end[1]["usage"]["tokens_saved"], 0);
  // An error after the stream started: an error event, then [DONE].
  OpenAiError e;
  e.http_status = 500;
  e.message = "boom";
  std::vector<json> err = Events(OpenAiResponder::StreamError(e), &done);
  EXPECT_TRUE(done);
  EXPECT_EQ(err[0]["error"]["message"], "boom");
}

TEST(OpenAiResponseTest, MergeKeepsEveryTokenAndTheFinish) {
  RequestOutput merged, a, b = Finished(FinishReason::kLength, 3, 0);
  a.new_tokens = {1, 2};
  a.logprobs = {-0.5f, -0.25f};
  a.text = "ab";
  b.new_tokens = {3};
  b.logprobs = {-1.0f};
  b.text = "c";
  MergeOutput(a, &merged);
  EXPECT_FALSE(merged.finished);
  MergeOutput(b, &merged);
  EXPECT_THAT(merged.new_tokens, ::testing::ElementsAre(1, 2, 3));
  EXPECT_EQ(merged.logprobs.size(), 3u);
  EXPECT_EQ(merged.text, "abc");
  EXPECT_TRUE(merged.finished);
  EXPECT_EQ(merged.finish_reason, FinishReason::kLength);
  EXPECT_EQ(merged.usage.completion_tokens, 3);
}

}  // namespace
}  // namespace lil
