// File: tools/lilctl/tokenize_cmd.cc
// `lilctl tokenize`: encode stdin text to ids or decode ids to text with a model directory,
// a tokenizer.json or a .gguf file. --jsonl handles one JSON value per line, so parity tests
// run thousands of lines in one process; --time reports encode speed on stderr.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/format/gguf_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "tools/lilctl/command.h"

namespace lil::ctl {
namespace {

using nlohmann::json;

struct TokenizeFlags {
  std::string model;
  bool decode = false;
  bool jsonl = false;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
  bool time = false;
};

[[noreturn]] void Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "lilctl tokenize: %s\n", message.c_str());
  throw CLI::RuntimeError(code);
}

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok;
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) {
    auto spec = ReadGgufTokenizerSpec(path);
    if (!spec.ok()) Fail(std::string(spec.status().message()));
    tok = Tokenizer::FromSpec(*spec);
  } else {
    tok = Tokenizer::FromFile(path);
  }
  if (!tok.ok()) Fail(std::string(tok.status().message()));
  return std::move(tok).value();
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Ids from a JSON array; `where` names the input line for errors.
std::vector<TokenId> IdsFromJson(const json& j, const std::string& where) {
  std::vector<TokenId> ids;
  for (const json& v : j) {
    if (!v.is_number_integer()) Fail(where + ": ids must be integers, got " + Dump(v));
    ids.push_back(v.get<TokenId>());
  }
  return ids;
}

// One value: a string is encoded (-> array of ids), an array of ids is decoded (-> string).
std::string Handle(const Tokenizer& tok, const TokenizeFlags& flags, const json& value,
                   const std::string& where, int64_t* num_tokens) {
  if (value.is_string()) {
    const std::vector<TokenId> ids = tok.Encode(value.get<std::string>(), flags.add_special_tokens);
    *num_tokens += static_cast<int64_t>(ids.size());
    return Dump(json(ids));
  }
  if (value.is_array()) {
    return Dump(json(tok.Decode(IdsFromJson(value, where), flags.skip_special_tokens)));
  }
  Fail(where + ": expected a JSON string or an array of ids, got " + Dump(value));
}

void Run(const TokenizeFlags& flags) {
  const std::unique_ptr<Tokenizer> tok = LoadTokenizer(flags.model);
  std::string out;
  int64_t num_tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  if (flags.jsonl) {
    std::string line;
    int64_t line_number = 0;
    while (std::getline(std::cin, line)) {
      ++line_number;
      if (line.empty()) continue;
      const std::string where = "stdin line " + std::to_string(line_number);
      json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (value.is_discarded()) Fail(where + ": not valid JSON");
      out += Handle(*tok, flags, value, where, &num_tokens);
      out += '\n';
    }
  } else {
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (flags.decode) {
      json value = json::parse(input, nullptr, /*allow_exceptions=*/false);
      if (value.is_discarded() || !value.is_array()) Fail("stdin: expected a JSON array of ids");
      out = tok->Decode(IdsFromJson(value, "stdin"), flags.skip_special_tokens);
    } else {
      out = Handle(*tok, flags, json(input), "stdin", &num_tokens) + "\n";
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (flags.time) {
    std::fprintf(stderr, "encoded %lld tokens in %.3f s: %.0f tokens/s\n",
                 static_cast<long long>(num_tokens), seconds, num_tokens / std::max(seconds, 1e-9));
  }
}

CommandRegistrar reg([](CLI::App& app) {
  auto flags = std::make_shared<TokenizeFlags>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Encode text to token ids or decode ids to text");
  cmd->add_option("--model", flags->model, "model directory, tokenizer.json or .gguf file")
      ->required();
  cmd->add_flag("--decode", flags->decode, "read a JSON array of ids, print the text");
  cmd->add_flag("--jsonl", flags->jsonl,
                "each stdin line is a JSON string (encode) or array of ids (decode)");
  cmd->add_flag("--add-special-tokens", flags->add_special_tokens,
                "apply the post-processor (e.g. add BOS) when encoding");
  cmd->add_flag("--skip-special-tokens", flags->skip_special_tokens,
                "leave special tokens out when decoding");
  cmd->add_flag("--time", flags->time, "print encode speed (tokens/s) to stderr");
  cmd->callback([flags] { Run(*flags); });
});

}  // namespace
}  // namespace lil::ctl
