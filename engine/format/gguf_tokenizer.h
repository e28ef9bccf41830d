// File: engine/format/gguf_tokenizer.h
// The tokenizer embedded in a GGUF file (tokenizer.ggml.* and tokenizer.chat_template) as a
// TokenizerSpec, validated (array lengths agree, special ids in range).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/format/gguf.h"
#include "engine/tokenizer/tokenizer_spec.h"

namespace lil {

absl::StatusOr<TokenizerSpec> ReadGgufTokenizerSpec(const GgufFile& f);
absl::StatusOr<TokenizerSpec> ReadGgufTokenizerSpec(const std::string& gguf_path);

}  // namespace lil
