// File: engine/tokenizer/json_components.h
// Parsers for the tokenizer.json sections other than the model: normalizer, pre_tokenizer,
// decoder, post_processor. Unsupported component types are UNIMPLEMENTED errors that name
// the section and the type; malformed ones are INVALID_ARGUMENT naming the field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "engine/tokenizer/decoder.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/tokenizer_parts.h"

namespace lil {

// `where` is the JSON path used in error messages, e.g. "tokenizer.json: normalizer".
absl::Status ParseNormalizer(const nlohmann::json& j, const std::string& where, Normalizer* out);
absl::Status ParsePreTokenizer(const nlohmann::json& j, const std::string& where,
                               PreTokenizer* out);
absl::Status ParseDecoder(const nlohmann::json& j, const std::string& where, DecoderConfig* out);
absl::Status ParsePostProcessor(const nlohmann::json& j, const std::string& where,
                                PostProcessor* out);

// Small typed accessors that never throw.
std::string JsonString(const nlohmann::json& j, const char* key, const std::string& fallback = "");
bool JsonBool(const nlohmann::json& j, const char* key, bool fallback);

}  // namespace lil
