// File: engine/tokenizer/tokenizer_gguf.cc
// Tokenizer::FromSpec: a GGUF tokenizer. "gpt2" is byte-level BPE with the pre-tokenizer
// named by tokenizer.ggml.pre (the same regexes as the models' HF tokenizer.json files);
// "llama" is SentencePiece BPE: merges by score, byte fallback, "▁" for spaces.
#include <string>

#include "common/status.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_parts.h"

namespace lil {
namespace {

constexpr int kTypeNormal = 1, kTypeControl = 3, kTypeUserDefined = 4;
constexpr char kSpace[] = "\xE2\x96\x81";  // "▁"

// Llama 3 ("llama-bpe") and Qwen2 split patterns, as in their tokenizer.json files.
constexpr char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr char kQwen2Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

NormalizerStep NormStep(NormalizerStep::Kind kind, std::string text = "",
                        std::string replacement = "") {
  NormalizerStep step;
  step.kind = kind;
  step.text = std::move(text);
  step.replacement = std::move(replacement);
  return step;
}

DecoderStep DecStep(DecoderStep::Kind kind, std::string pattern = "", std::string content = "") {
  DecoderStep step;
  step.kind = kind;
  step.pattern = std::move(pattern);
  step.content = std::move(content);
  return step;
}

absl::Status AddSplit(PreTokenizer* pre, const std::string& pattern, const std::string& where) {
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::kSplit;
  LIL_ASSIGN_OR_RETURN(auto regex, Regex::Compile(pattern, where));
  step.regex = std::move(regex);
  step.behavior = SplitBehavior::kIsolated;
  pre->AddStep(std::move(step));
  return absl::OkStatus();
}

absl::Status AddByteLevel(PreTokenizer* pre, bool use_regex, const std::string& where) {
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::kByteLevel;
  if (use_regex) {
    LIL_ASSIGN_OR_RETURN(auto regex, Regex::Compile(kGpt2Pattern, where));
    step.regex = std::move(regex);
  }
  pre->AddStep(std::move(step));
  return absl::OkStatus();
}

// Maps tokenizer.ggml.pre to pre-tokenizer steps (and NFC for Qwen2, as its tokenizer.json).
absl::Status BuildBytePreTokenizer(const std::string& pre, TokenizerParts* parts) {
  const std::string where = absl::StrCat("tokenizer.ggml.pre \"", pre, "\"");
  PreTokenizer* p = &parts->pre_tokenizer;
  if (pre == "gpt2" || pre.empty()) return AddByteLevel(p, true, where);
  if (pre == "smollm" || pre == "starcoder" || pre == "refact") {
    LIL_RETURN_IF_ERROR(AddSplit(p, R"(\p{N})", where));  // Digits(individual_digits)
    return AddByteLevel(p, true, where);
  }
  if (pre == "llama-bpe" || pre == "llama3") {
    LIL_RETURN_IF_ERROR(AddSplit(p, kLlama3Pattern, where));
    return AddByteLevel(p, false, where);
  }
  if (pre == "qwen2") {
    parts->normalizer.AddStep(NormStep(NormalizerStep::Kind::kNfc));
    LIL_RETURN_IF_ERROR(AddSplit(p, kQwen2Pattern, where));
    return AddByteLevel(p, false, where);
  }
  if (pre == "default") {
    // llama.cpp's fallback sequence for BPE vocabularies without a known pre-tokenizer.
    LIL_RETURN_IF_ERROR(AddSplit(p, R"([\p{P}\$\+<=>\^~\|]+)", where));
    LIL_RETURN_IF_ERROR(AddSplit(
        p, R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))", where));
    LIL_RETURN_IF_ERROR(AddSplit(p, R"(\p{N}+)", where));
    LIL_RETURN_IF_ERROR(AddSplit(p, R"([0-9][0-9][0-9])", where));
    return AddByteLevel(p, false, where);
  }
  return absl::UnimplementedError(absl::StrCat(
      where,
      " is not supported (known: gpt2, smollm, starcoder, refact, llama-bpe, qwen2, default)"));
}

int32_t TypeOf(const TokenizerSpec& spec, size_t id) {
  return id < spec.token_types.size() ? spec.token_types[id] : kTypeNormal;
}

void AddGgufAddedTokens(const TokenizerSpec& spec, TokenizerParts* parts) {
  for (size_t id = 0; id < spec.tokens.size(); ++id) {
    const int32_t type = TypeOf(spec, id);
    if (type != kTypeControl && type != kTypeUserDefined) continue;
    AddedToken t;
    t.id = static_cast<TokenId>(id);
    t.content = spec.tokens[id];
    t.special = type == kTypeControl;
    parts->added_tokens.push_back(std::move(t));
  }
}

absl::Status BuildGpt2(const TokenizerSpec& spec, TokenizerParts* parts) {
  LIL_RETURN_IF_ERROR(parts->model.Init(spec.tokens, BpeOptions{}));
  for (size_t i = 0; i < spec.merges.size(); ++i) {
    const std::string& m = spec.merges[i];
    const size_t space = m.find(' ', 1);
    const std::string at = absl::StrCat("tokenizer.ggml.merges[", i, "]");
    if (space == std::string::npos || space + 1 >= m.size()) {
      return InvalidArgument(at, ": \"", m, "\" is not two tokens separated by a space");
    }
    LIL_RETURN_IF_ERROR(parts->model.AddMerge(std::string_view(m).substr(0, space),
                                              std::string_view(m).substr(space + 1),
                                              static_cast<int32_t>(i), at));
  }
  LIL_RETURN_IF_ERROR(BuildBytePreTokenizer(spec.pre, parts));
  parts->decoder.none = false;
  parts->decoder.steps.push_back(DecStep(DecoderStep::Kind::kByteLevel));
  return absl::OkStatus();
}

absl::Status BuildLlama(const TokenizerSpec& spec, TokenizerParts* parts) {
  if (spec.scores.size() != spec.tokens.size()) {
    return InvalidArgument("tokenizer.ggml.scores has ", spec.scores.size(),
                           " entries but the \"llama\" model needs one per token (",
                           spec.tokens.size(), ")");
  }
  BpeOptions options;
  options.byte_fallback = true;
  options.unk_id = spec.unk_id;
  LIL_RETURN_IF_ERROR(parts->model.Init(spec.tokens, options));
  std::vector<bool> mergeable(spec.tokens.size());
  for (size_t id = 0; id < spec.tokens.size(); ++id)
    mergeable[id] = TypeOf(spec, id) == kTypeNormal;
  parts->model.AddMergesFromScores(spec.scores, mergeable);
  // SentencePiece: every segment gets a leading "▁" (llama.cpp and HF's legacy Llama
  // normalizer both prepend after each special token too), spaces become "▁".
  if (spec.add_space_prefix) {
    parts->normalizer.AddStep(NormStep(NormalizerStep::Kind::kPrepend, kSpace));
  }
  parts->normalizer.AddStep(NormStep(NormalizerStep::Kind::kReplace, " ", kSpace));
  parts->decoder.none = false;
  parts->decoder.steps.push_back(DecStep(DecoderStep::Kind::kReplace, kSpace, " "));
  parts->decoder.steps.push_back(DecStep(DecoderStep::Kind::kByteFallback));
  parts->decoder.steps.push_back(DecStep(DecoderStep::Kind::kFuse));
  if (spec.add_space_prefix) {
    DecoderStep strip = DecStep(DecoderStep::Kind::kStrip, "", " ");
    strip.strip_start = 1;
    parts->decoder.steps.push_back(strip);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromSpec(const TokenizerSpec& spec) {
  if (spec.tokens.empty()) return InvalidArgument("tokenizer.ggml.tokens is empty");
  auto parts = std::make_unique<TokenizerParts>();
  if (spec.model == "gpt2") {
    LIL_RETURN_IF_ERROR(BuildGpt2(spec, parts.get()));
  } else if (spec.model == "llama") {
    LIL_RETURN_IF_ERROR(BuildLlama(spec, parts.get()));
  } else {
    return absl::UnimplementedError(absl::StrCat("tokenizer.ggml.model \"", spec.model,
                                                 "\" is not supported (only gpt2 and llama)"));
  }
  const auto n = static_cast<TokenId>(spec.tokens.size());
  for (const auto& [name, id] : {std::pair{"bos", spec.bos_id}, std::pair{"eos", spec.eos_id}}) {
    if (id && (*id < 0 || *id >= n)) {
      return InvalidArgument("tokenizer.ggml.", name, "_token_id ", *id,
                             " is outside the vocab of ", n);
    }
  }
  AddGgufAddedTokens(spec, parts.get());
  if (spec.add_bos && spec.bos_id) parts->post.prefix.push_back(*spec.bos_id);
  if (spec.add_eos && spec.eos_id) parts->post.suffix.push_back(*spec.eos_id);
  parts->bos_id = spec.bos_id;
  parts->eos_id = spec.eos_id;
  parts->chat_template = spec.chat_template;
  FinishParts(parts.get());
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(parts)));
}

}  // namespace lil
