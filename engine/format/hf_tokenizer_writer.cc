// File: engine/format/hf_tokenizer_writer.cc
// tokenizer.json / tokenizer_config.json for generated checkpoints. Layout of the vocab:
// ids 0..255 are the bytes (GPT-2 alphabet), then merged tokens, then the special tokens.
// The pre-tokenizer, post-processor and merges encoding follow each family's published file.
#include "engine/format/hf_tokenizer_writer.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/format/bpe_trainer.h"

namespace lil {
namespace {

using json = nlohmann::json;

constexpr int kMaxMerges = 400;

constexpr const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwenRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

constexpr const char* kLlama3Template =
    "{{- bos_token }}{%- for message in messages %}<|start_header_id|>{{ message['role'] }}"
    "<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>{%- endfor %}"
    "{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{%- endif %}";
constexpr const char* kChatmlTemplate =
    "{%- for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}";

struct Special {
  std::string content;
  bool special = true;
};

struct Style {
  std::vector<Special> specials;
  std::string bos, eos, pad;        // contents; empty: none
  std::vector<std::string> extra_eos;  // more stop tokens for generation_config.json
  json pre_tokenizer, post_processor, decoder, normalizer;
  bool merges_as_arrays = false;
  bool ignore_merges = false;
  bool add_bos = false;
  const char* chat_template = kChatmlTemplate;
};

json ByteLevel(bool add_prefix_space, bool trim_offsets, bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space},
          {"trim_offsets", trim_offsets}, {"use_regex", use_regex}};
}
json SplitRegex(const char* regex) {
  return {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
}

Style StyleFor(TokenizerStyle s) {
  Style st;
  switch (s) {
    case TokenizerStyle::kLlama3:
      st.specials = {{"<|begin_of_text|>"}, {"<|end_of_text|>"}, {"<|start_header_id|>"},
                     {"<|end_header_id|>"}, {"<|eot_id|>"}};
      st.bos = "<|begin_of_text|>";
      st.eos = "<|eot_id|>";
      st.extra_eos = {"<|end_of_text|>"};
      st.pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", {SplitRegex(kLlama3Regex), ByteLevel(false, true, false)}}};
      st.decoder = ByteLevel(true, true, true);
      st.ignore_merges = true;
      st.add_bos = true;
      st.chat_template = kLlama3Template;
      break;
    case TokenizerStyle::kQwen2:
    case TokenizerStyle::kQwen3:
      st.specials = {{"<|endoftext|>"}, {"<|im_start|>"}, {"<|im_end|>"}};
      if (s == TokenizerStyle::kQwen3) st.specials.insert(st.specials.end(), {{"<think>", false}, {"</think>", false}});
      st.eos = "<|im_end|>";
      st.extra_eos = {"<|endoftext|>"};
      st.pad = "<|endoftext|>";
      st.normalizer = {{"type", "NFC"}};
      st.pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", {SplitRegex(kQwenRegex), ByteLevel(false, false, false)}}};
      st.post_processor = ByteLevel(false, false, false);
      st.decoder = ByteLevel(false, false, false);
      st.merges_as_arrays = true;
      break;
    case TokenizerStyle::kSmolLM2:
      st.specials = {{"<|endoftext|>"}, {"<|im_start|>"}, {"<|im_end|>"}};
      st.bos = "<|im_start|>";
      st.eos = "<|im_end|>";
      st.pad = "<|endoftext|>";
      st.pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers",
          {{{"type", "Digits"}, {"individual_digits", true}}, ByteLevel(false, true, true)}}};
      st.post_processor = ByteLevel(true, true, true);
      st.decoder = ByteLevel(true, true, true);
      break;
  }
  return st;
}

// Llama 3 prepends <|begin_of_text|> through a TemplateProcessing post-processor.
json BosTemplate(const std::string& bos, int64_t bos_id) {
  json tp = {{"type", "TemplateProcessing"},
             {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
             {"pair", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                       {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
             {"special_tokens", {{bos, {{"id", bos}, {"ids", {bos_id}}, {"tokens", {bos}}}}}}};
  return {{"type", "Sequence"}, {"processors", {ByteLevel(true, false, true), tp}}};
}

absl::Status WriteJson(const std::filesystem::path& path, const json& j) {
  std::ofstream out(path);
  out << j.dump(2, ' ', /*ensure_ascii=*/false) << "\n";
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WrittenTokenizer> WriteHfTokenizer(const std::string& dir, TokenizerStyle style,
                                                  int64_t max_tokens, int64_t model_max_length) {
  const Style st = StyleFor(style);
  const int64_t n_special = static_cast<int64_t>(st.specials.size());
  if (max_tokens < 256 + n_special) {
    return InvalidArgument("vocab size ", max_tokens, " cannot hold the tokenizer's 256 byte tokens and ",
                           n_special, " special tokens");
  }
  // Each merge adds at most one token, so this many merges always fit.
  const int max_merges = static_cast<int>(std::min<int64_t>(kMaxMerges, max_tokens - 256 - n_special));
  const auto merges = LearnByteLevelMerges(TokenizerTrainingText(), max_merges);

  json vocab = json::object();
  absl::flat_hash_set<std::string> seen;
  int64_t next_id = 0;
  for (const std::string& b : ByteToUnicode()) { vocab[b] = next_id++; seen.insert(b); }
  json merges_json = json::array();
  for (const auto& [a, b] : merges) {
    if (seen.insert(a + b).second) vocab[a + b] = next_id++;
    if (st.merges_as_arrays) merges_json.push_back({a, b});
    else merges_json.push_back(a + " " + b);
  }
  WrittenTokenizer out;
  out.num_merges = static_cast<int64_t>(merges.size());
  json added = json::array();
  json added_decoder = json::object();
  absl::flat_hash_map<std::string, int64_t> special_ids;
  for (const Special& s : st.specials) {
    const int64_t id = next_id++;
    special_ids[s.content] = id;
    json entry = {{"id", id}, {"content", s.content}, {"single_word", false}, {"lstrip", false},
                  {"rstrip", false}, {"normalized", false}, {"special", s.special}};
    added.push_back(entry);
    entry.erase("id");
    added_decoder[std::to_string(id)] = entry;
  }
  out.num_tokens = next_id;
  auto id_of = [&](const std::string& c) { return c.empty() ? int64_t{-1} : special_ids.at(c); };
  out.ids.bos = id_of(st.bos);
  out.ids.pad = id_of(st.pad);
  out.ids.eos.push_back(id_of(st.eos));
  for (const std::string& e : st.extra_eos) out.ids.eos.push_back(id_of(e));

  json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", st.ignore_merges},
                {"vocab", vocab}, {"merges", merges_json}};
  json tok = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
              {"added_tokens", added}, {"normalizer", st.normalizer},
              {"pre_tokenizer", st.pre_tokenizer},
              {"post_processor", style == TokenizerStyle::kLlama3 ? BosTemplate(st.bos, out.ids.bos) : st.post_processor},
              {"decoder", st.decoder}, {"model", model}};
  auto str_or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json cfg = {{"add_bos_token", st.add_bos}, {"add_eos_token", false},
              {"added_tokens_decoder", added_decoder}, {"bos_token", str_or_null(st.bos)},
              {"eos_token", st.eos}, {"pad_token", str_or_null(st.pad)}, {"unk_token", nullptr},
              {"chat_template", st.chat_template}, {"clean_up_tokenization_spaces", false},
              {"model_max_length", model_max_length}, {"tokenizer_class", "PreTrainedTokenizerFast"}};
  const std::filesystem::path d(dir);
  LIL_RETURN_IF_ERROR(WriteJson(d / "tokenizer.json", tok));
  LIL_RETURN_IF_ERROR(WriteJson(d / "tokenizer_config.json", cfg));
  return out;
}

}  // namespace lil
