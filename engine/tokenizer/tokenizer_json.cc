// File: engine/tokenizer/tokenizer_json.cc
// Tokenizer::FromFile: a HuggingFace tokenizer.json (model BPE) plus the tokenizer_config.json
// and chat_template.jinja beside it. nlohmann::json may throw; this is the edge that catches.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/status.h"
#include "engine/tokenizer/json_components.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_parts.h"

namespace lil {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<json> ReadJson(const fs::path& path) {
  LIL_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    try {
      json reparsed = json::parse(text);  // only to get the parser's message
      (void)reparsed;
    } catch (const json::parse_error& e) {
      return InvalidArgument(path.string(), ": not valid JSON: ", e.what());
    }
    return InvalidArgument(path.string(), ": not valid JSON");
  }
  return j;
}

// One merge entry: "a b" or ["a", "b"].
absl::Status AddMergeEntry(const json& m, size_t rank, const std::string& where, BpeModel* model) {
  const std::string at = absl::StrCat(where, ".merges[", rank, "]");
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 >= s.size() ||
        s.find(' ', space + 1) != std::string::npos) {
      return InvalidArgument(at, ": \"", s, "\" is not two tokens separated by one space");
    }
    return model->AddMerge(std::string_view(s).substr(0, space),
                           std::string_view(s).substr(space + 1), static_cast<int32_t>(rank), at);
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return model->AddMerge(m[0].get<std::string>(), m[1].get<std::string>(),
                           static_cast<int32_t>(rank), at);
  }
  return InvalidArgument(at, ": must be \"a b\" or [\"a\", \"b\"]");
}

absl::Status ParseModel(const json& m, const std::string& where, BpeModel* model) {
  if (!m.is_object()) return InvalidArgument(where, " is missing or not an object");
  const std::string type = JsonString(m, "type", "BPE");
  if (type != "BPE") {
    return absl::UnimplementedError(
        absl::StrCat(where, ".type \"", type, "\" is not supported (only BPE)"));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!JsonString(m, key).empty()) {
      return absl::UnimplementedError(
          absl::StrCat(where, ".", key, " \"", JsonString(m, key), "\" is not supported"));
    }
  }
  if (!m.contains("vocab") || !m["vocab"].is_object())
    return InvalidArgument(where, ".vocab must be an object");
  std::vector<std::string> id_to_token;
  for (const auto& [token, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 24)) {
      return InvalidArgument(where, ".vocab[\"", token, "\"]: id must be an integer in [0, 2^24]");
    }
    const size_t i = id.get<size_t>();
    if (i >= id_to_token.size()) id_to_token.resize(i + 1);
    id_to_token[i] = token;
  }
  BpeOptions options;
  options.byte_fallback = JsonBool(m, "byte_fallback", false);
  options.fuse_unk = JsonBool(m, "fuse_unk", false);
  options.ignore_merges = JsonBool(m, "ignore_merges", false);
  const std::string unk = JsonString(m, "unk_token");
  if (!unk.empty()) {
    const json& vocab = m["vocab"];
    if (!vocab.contains(unk))
      return InvalidArgument(where, ".unk_token \"", unk, "\" is not in the vocab");
    options.unk_id = vocab[unk].get<TokenId>();
  }
  LIL_RETURN_IF_ERROR(model->Init(std::move(id_to_token), options));
  if (!m.contains("merges") || !m["merges"].is_array())
    return InvalidArgument(where, ".merges must be an array");
  const json& merges = m["merges"];
  for (size_t i = 0; i < merges.size(); ++i)
    LIL_RETURN_IF_ERROR(AddMergeEntry(merges[i], i, where, model));
  return absl::OkStatus();
}

absl::Status ParseAddedTokens(const json& j, const std::string& where,
                              std::vector<AddedToken>* out) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_array()) return InvalidArgument(where, " must be an array");
  for (size_t i = 0; i < j.size(); ++i) {
    const json& t = j[i];
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
        t["id"].get<int64_t>() < 0 || t["id"].get<int64_t>() > (1 << 24) ||
        !t.contains("content") || !t["content"].is_string()) {
      return InvalidArgument(where, "[", i,
                             "]: needs an integer \"id\" in [0, 2^24] and a string \"content\"");
    }
    AddedToken token;
    token.id = t["id"].get<TokenId>();
    token.content = t["content"].get<std::string>();
    token.special = JsonBool(t, "special", false);
    token.normalized = JsonBool(t, "normalized", !token.special);
    token.lstrip = JsonBool(t, "lstrip", false);
    token.rstrip = JsonBool(t, "rstrip", false);
    token.single_word = JsonBool(t, "single_word", false);
    out->push_back(std::move(token));
  }
  return absl::OkStatus();
}

// bos_token / eos_token are a string or an AddedToken object {"content": ...}.
std::string ConfigToken(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  return JsonString(v, "content");
}

// chat_template is a string or a list of {"name", "template"} (we take "default").
std::string ConfigChatTemplate(const json& config) {
  if (!config.is_object() || !config.contains("chat_template")) return "";
  const json& v = config["chat_template"];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    for (const json& t : v) {
      if (JsonString(t, "name") == "default") return JsonString(t, "template");
    }
  }
  return "";
}

absl::Status LoadConfig(const fs::path& dir, TokenizerParts* parts, const Tokenizer& tok) {
  std::error_code ec;
  const fs::path config_path = dir / "tokenizer_config.json";
  json config;
  if (fs::exists(config_path, ec)) {
    LIL_ASSIGN_OR_RETURN(config, ReadJson(config_path));
  }
  parts->chat_template = ConfigChatTemplate(config);
  const fs::path jinja = dir / "chat_template.jinja";
  if (parts->chat_template.empty() && fs::exists(jinja, ec)) {
    LIL_ASSIGN_OR_RETURN(parts->chat_template, ReadWholeFile(jinja));
  }
  const std::string bos = ConfigToken(config, "bos_token"), eos = ConfigToken(config, "eos_token");
  if (!bos.empty()) parts->bos_id = tok.TokenToId(bos);
  if (!eos.empty()) parts->eos_id = tok.TokenToId(eos);
  if (!bos.empty() && !parts->bos_id) {
    return InvalidArgument(config_path.string(), ": bos_token \"", bos,
                           "\" is not in the vocabulary");
  }
  if (!eos.empty() && !parts->eos_id) {
    return InvalidArgument(config_path.string(), ": eos_token \"", eos,
                           "\" is not in the vocabulary");
  }
  // Without a config, the post-processor's first prefix token is the best guess for BOS.
  if (bos.empty() && !parts->post.prefix.empty()) parts->bos_id = parts->post.prefix.front();
  return absl::OkStatus();
}

absl::Status FillParts(const json& j, const std::string& file, TokenizerParts* parts) {
  if (!j.is_object()) return InvalidArgument(file, ": top level must be an object");
  LIL_RETURN_IF_ERROR(ParseModel(j.value("model", json()), file + ": model", &parts->model));
  LIL_RETURN_IF_ERROR(ParseAddedTokens(j.value("added_tokens", json()), file + ": added_tokens",
                                       &parts->added_tokens));
  LIL_RETURN_IF_ERROR(
      ParseNormalizer(j.value("normalizer", json()), file + ": normalizer", &parts->normalizer));
  LIL_RETURN_IF_ERROR(ParsePreTokenizer(j.value("pre_tokenizer", json()), file + ": pre_tokenizer",
                                        &parts->pre_tokenizer));
  LIL_RETURN_IF_ERROR(
      ParseDecoder(j.value("decoder", json()), file + ": decoder", &parts->decoder));
  LIL_RETURN_IF_ERROR(ParsePostProcessor(j.value("post_processor", json()),
                                         file + ": post_processor", &parts->post));
  for (TokenId id : parts->post.prefix) {
    if (id < 0) return InvalidArgument(file, ": post_processor: negative token id ", id);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  std::error_code ec;
  fs::path file(path);
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  if (!fs::exists(file, ec)) {
    return absl::NotFoundError(absl::StrCat("tokenizer file ", file.string(), " does not exist"));
  }
  try {
    LIL_ASSIGN_OR_RETURN(json j, ReadJson(file));
    auto parts = std::make_unique<TokenizerParts>();
    LIL_RETURN_IF_ERROR(FillParts(j, file.string(), parts.get()));
    FinishParts(parts.get());
    TokenizerParts* raw = parts.get();
    std::unique_ptr<Tokenizer> tok(new Tokenizer(std::move(parts)));
    LIL_RETURN_IF_ERROR(LoadConfig(file.parent_path(), raw, *tok));
    return tok;
  } catch (const std::exception& e) {
    return InvalidArgument(file.string(), ": malformed tokenizer: ", e.what());
  }
}

}  // namespace lil
