// File: engine/tokenizer/json_components.cc
// tokenizer.json component parsing, recursive for Sequence. Only the types used by the
// supported families are accepted; anything else is a clear UNIMPLEMENTED error rather than a
// tokenizer that silently disagrees with the reference.
#include "engine/tokenizer/json_components.h"

#include "common/status.h"

namespace lil {
namespace {

using nlohmann::json;

absl::Status Unsupported(const std::string& where, const std::string& type) {
  return absl::UnimplementedError(absl::StrCat(where, ": type \"", type, "\" is not supported"));
}

std::string TypeOf(const json& j) { return JsonString(j, "type"); }

// A {"String": s} or {"Regex": r} pattern. Regexes are compiled; strings stay literal.
absl::Status ParsePattern(const json& j, const std::string& where, std::string* literal,
                          std::shared_ptr<const Regex>* regex) {
  if (!j.is_object()) return InvalidArgument(where, ": pattern must be an object");
  if (j.contains("String") && j["String"].is_string()) {
    *literal = j["String"].get<std::string>();
    return absl::OkStatus();
  }
  if (j.contains("Regex") && j["Regex"].is_string()) {
    LIL_ASSIGN_OR_RETURN(auto compiled, Regex::Compile(j["Regex"].get<std::string>(), where));
    *regex = std::move(compiled);
    return absl::OkStatus();
  }
  return InvalidArgument(where, ": pattern needs a \"String\" or \"Regex\" string");
}

absl::StatusOr<SplitBehavior> ParseBehavior(const std::string& name, const std::string& where) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return InvalidArgument(where, ".behavior: unknown value \"", name, "\"");
}

// Metaspace: prepend_scheme (new) or add_prefix_space (old files).
PreTokenizerStep::Prepend ParsePrependScheme(const json& j) {
  const std::string scheme = JsonString(j, "prepend_scheme");
  if (scheme == "first") return PreTokenizerStep::Prepend::kFirst;
  if (scheme == "never") return PreTokenizerStep::Prepend::kNever;
  if (scheme == "always") return PreTokenizerStep::Prepend::kAlways;
  return JsonBool(j, "add_prefix_space", true) ? PreTokenizerStep::Prepend::kAlways
                                               : PreTokenizerStep::Prepend::kNever;
}

absl::StatusOr<std::vector<TokenId>> SpecialTokenIds(const json& specials, const std::string& name,
                                                     const std::string& where) {
  if (!specials.is_object() || !specials.contains(name) || !specials[name].is_object() ||
      !specials[name].contains("ids") || !specials[name]["ids"].is_array()) {
    return InvalidArgument(where, ".special_tokens: no ids for \"", name, "\"");
  }
  std::vector<TokenId> ids;
  for (const json& id : specials[name]["ids"]) {
    if (!id.is_number_integer())
      return InvalidArgument(where, ".special_tokens.", name, ": id is not an integer");
    ids.push_back(id.get<TokenId>());
  }
  return ids;
}

absl::Status ParseTemplate(const json& j, const std::string& where, PostProcessor* out) {
  if (!j.contains("single") || !j["single"].is_array()) {
    return InvalidArgument(where, ".single must be an array");
  }
  bool seen_sequence = false;
  for (const json& item : j["single"]) {
    if (item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!item.contains("SpecialToken") || !item["SpecialToken"].is_object()) {
      return InvalidArgument(where, ".single: item is neither Sequence nor SpecialToken");
    }
    const std::string name = JsonString(item["SpecialToken"], "id");
    LIL_ASSIGN_OR_RETURN(auto ids, SpecialTokenIds(j.value("special_tokens", json()), name, where));
    auto& dest = seen_sequence ? out->suffix : out->prefix;
    dest.insert(dest.end(), ids.begin(), ids.end());
  }
  return absl::OkStatus();
}

// Roberta/Bert: "cls": [token, id], "sep": [token, id].
absl::Status ParseClsSep(const json& j, const std::string& where, PostProcessor* out) {
  for (const char* key : {"cls", "sep"}) {
    if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 ||
        !j[key][1].is_number_integer()) {
      return InvalidArgument(where, ".", key, " must be [token, id]");
    }
    (std::string(key) == "cls" ? out->prefix : out->suffix).push_back(j[key][1].get<TokenId>());
  }
  return absl::OkStatus();
}

}  // namespace

std::string JsonString(const json& j, const char* key, const std::string& fallback) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return fallback;
  return j[key].get<std::string>();
}

bool JsonBool(const json& j, const char* key, bool fallback) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_boolean()) return fallback;
  return j[key].get<bool>();
}

absl::Status ParseNormalizer(const json& j, const std::string& where, Normalizer* out) {
  if (j.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(j);
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) {
      return InvalidArgument(where, ".normalizers must be an array");
    }
    for (size_t i = 0; i < j["normalizers"].size(); ++i) {
      LIL_RETURN_IF_ERROR(
          ParseNormalizer(j["normalizers"][i], absl::StrCat(where, ".normalizers[", i, "]"), out));
    }
    return absl::OkStatus();
  }
  NormalizerStep step;
  if (type == "NFC") {
    step.kind = NormalizerStep::Kind::kNfc;
  } else if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::kPrepend;
    step.text = JsonString(j, "prepend");
  } else if (type == "Replace") {
    step.kind = NormalizerStep::Kind::kReplace;
    LIL_RETURN_IF_ERROR(
        ParsePattern(j.value("pattern", json()), where + ".pattern", &step.text, &step.regex));
    step.replacement = JsonString(j, "content");
  } else if (type == "Strip") {
    step.kind = NormalizerStep::Kind::kStrip;
    step.strip_left = JsonBool(j, "strip_left", true);
    step.strip_right = JsonBool(j, "strip_right", true);
  } else {
    return Unsupported(where, type);
  }
  out->AddStep(std::move(step));
  return absl::OkStatus();
}

absl::Status ParsePreTokenizer(const json& j, const std::string& where, PreTokenizer* out) {
  if (j.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(j);
  PreTokenizerStep step;
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
      return InvalidArgument(where, ".pretokenizers must be an array");
    }
    for (size_t i = 0; i < j["pretokenizers"].size(); ++i) {
      LIL_RETURN_IF_ERROR(ParsePreTokenizer(j["pretokenizers"][i],
                                            absl::StrCat(where, ".pretokenizers[", i, "]"), out));
    }
    return absl::OkStatus();
  } else if (type == "Split") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    LIL_RETURN_IF_ERROR(
        ParsePattern(j.value("pattern", json()), where + ".pattern", &step.literal, &step.regex));
    LIL_ASSIGN_OR_RETURN(step.behavior,
                         ParseBehavior(JsonString(j, "behavior", "Isolated"), where));
    step.invert = JsonBool(j, "invert", false);
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = JsonBool(j, "add_prefix_space", true);
    if (JsonBool(j, "use_regex", true)) {
      LIL_ASSIGN_OR_RETURN(auto regex, Regex::Compile(kGpt2Pattern, where));
      step.regex = std::move(regex);
    }
  } else if (type == "Digits") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    LIL_ASSIGN_OR_RETURN(auto regex, Regex::Compile("\\p{N}", where));
    step.regex = std::move(regex);
    step.behavior = JsonBool(j, "individual_digits", false) ? SplitBehavior::kIsolated
                                                            : SplitBehavior::kContiguous;
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::Kind::kMetaspace;
    step.replacement = JsonString(j, "replacement", "\xE2\x96\x81");
    step.prepend = ParsePrependScheme(j);
    step.split = JsonBool(j, "split", true);
  } else {
    return Unsupported(where, type);
  }
  out->AddStep(std::move(step));
  return absl::OkStatus();
}

absl::Status ParseDecoder(const json& j, const std::string& where, DecoderConfig* out) {
  if (j.is_null()) return absl::OkStatus();
  out->none = false;
  const std::string type = TypeOf(j);
  if (type == "Sequence") {
    if (!j.contains("decoders") || !j["decoders"].is_array()) {
      return InvalidArgument(where, ".decoders must be an array");
    }
    for (size_t i = 0; i < j["decoders"].size(); ++i) {
      LIL_RETURN_IF_ERROR(
          ParseDecoder(j["decoders"][i], absl::StrCat(where, ".decoders[", i, "]"), out));
    }
    return absl::OkStatus();
  }
  DecoderStep step;
  if (type == "ByteLevel") {
    step.kind = DecoderStep::Kind::kByteLevel;
  } else if (type == "Replace") {
    step.kind = DecoderStep::Kind::kReplace;
    std::shared_ptr<const Regex> regex;
    LIL_RETURN_IF_ERROR(
        ParsePattern(j.value("pattern", json()), where + ".pattern", &step.pattern, &regex));
    if (regex)
      return absl::UnimplementedError(where + ": Replace with a Regex pattern is not supported");
    step.content = JsonString(j, "content");
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::kStrip;
    step.content = JsonString(j, "content", " ");
    step.strip_start = j.value("start", 0);
    step.strip_stop = j.value("stop", 0);
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::kMetaspace;
    step.content = JsonString(j, "replacement", "\xE2\x96\x81");
    step.metaspace_strip_first = ParsePrependScheme(j) != PreTokenizerStep::Prepend::kNever;
  } else {
    return Unsupported(where, type);
  }
  out->steps.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status ParsePostProcessor(const json& j, const std::string& where, PostProcessor* out) {
  if (j.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(j);
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) {
      return InvalidArgument(where, ".processors must be an array");
    }
    for (size_t i = 0; i < j["processors"].size(); ++i) {
      LIL_RETURN_IF_ERROR(
          ParsePostProcessor(j["processors"][i], absl::StrCat(where, ".processors[", i, "]"), out));
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only
  if (type == "TemplateProcessing") return ParseTemplate(j, where, out);
  if (type == "RobertaProcessing" || type == "BertProcessing") return ParseClsSep(j, where, out);
  return Unsupported(where, type);
}

}  // namespace lil
