// File: engine/format/gguf_tokenizer.cc
// tokenizer.ggml.* metadata -> TokenizerSpec. Optional keys may be absent; present keys of
// the wrong type or length are errors (a silently wrong tokenizer is worse than none).
#include "engine/format/gguf_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/format/string_view_compat.h"

namespace lil {
namespace {

absl::Status ReadOptionalId(const GgufFile& f, const char* key, size_t n_tokens,
                            std::optional<TokenId>* out) {
  if (!f.Has(key)) return absl::OkStatus();
  LIL_ASSIGN_OR_RETURN(int64_t id, f.GetInt(key));
  if (id < 0 || static_cast<uint64_t>(id) >= n_tokens) {
    return InvalidArgument(f.path(), ": ", key, " = ", id, " is outside the vocabulary of ",
                           n_tokens, " tokens");
  }
  *out = static_cast<TokenId>(id);
  return absl::OkStatus();
}

absl::Status ReadOptionalBool(const GgufFile& f, const char* key, bool* out) {
  if (!f.Has(key)) return absl::OkStatus();
  LIL_ASSIGN_OR_RETURN(*out, f.GetBool(key));
  return absl::OkStatus();
}

absl::Status CheckLength(const GgufFile& f, const char* key, size_t got, size_t want) {
  if (got == want) return absl::OkStatus();
  return InvalidArgument(f.path(), ": ", key, " has ", got, " entries but tokenizer.ggml.tokens has ",
                         want);
}

}  // namespace

absl::StatusOr<TokenizerSpec> ReadGgufTokenizerSpec(const GgufFile& f) {
  TokenizerSpec spec;
  LIL_ASSIGN_OR_RETURN(spec.model, f.GetString("tokenizer.ggml.model"));
  if (f.Has("tokenizer.ggml.pre")) {
    LIL_ASSIGN_OR_RETURN(spec.pre, f.GetString("tokenizer.ggml.pre"));
  }
  LIL_ASSIGN_OR_RETURN(spec.tokens, f.GetStringArray("tokenizer.ggml.tokens"));
  const size_t n = spec.tokens.size();
  if (n == 0) return InvalidArgument(f.path(), ": tokenizer.ggml.tokens is empty");
  if (n > static_cast<size_t>(INT32_MAX)) return InvalidArgument(f.path(), ": too many tokens (", n, ")");
  if (f.Has("tokenizer.ggml.scores")) {
    LIL_ASSIGN_OR_RETURN(spec.scores, f.GetFloatArray("tokenizer.ggml.scores"));
    LIL_RETURN_IF_ERROR(CheckLength(f, "tokenizer.ggml.scores", spec.scores.size(), n));
  }
  if (f.Has("tokenizer.ggml.token_type")) {
    LIL_ASSIGN_OR_RETURN(std::vector<int64_t> types, f.GetIntArray("tokenizer.ggml.token_type"));
    LIL_RETURN_IF_ERROR(CheckLength(f, "tokenizer.ggml.token_type", types.size(), n));
    spec.token_types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > 6) {
        return InvalidArgument(f.path(), ": tokenizer.ggml.token_type[", i, "] = ", types[i],
                               " is not a token type (0..6)");
      }
      spec.token_types.push_back(static_cast<int32_t>(types[i]));
    }
  }
  if (f.Has("tokenizer.ggml.merges")) {
    LIL_ASSIGN_OR_RETURN(spec.merges, f.GetStringArray("tokenizer.ggml.merges"));
  }
  LIL_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.bos_token_id", n, &spec.bos_id));
  LIL_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.eos_token_id", n, &spec.eos_id));
  LIL_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.padding_token_id", n, &spec.pad_id));
  LIL_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.unknown_token_id", n, &spec.unk_id));
  LIL_RETURN_IF_ERROR(ReadOptionalBool(f, "tokenizer.ggml.add_bos_token", &spec.add_bos));
  LIL_RETURN_IF_ERROR(ReadOptionalBool(f, "tokenizer.ggml.add_eos_token", &spec.add_eos));
  LIL_RETURN_IF_ERROR(ReadOptionalBool(f, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix));
  if (f.Has("tokenizer.chat_template")) {
    LIL_ASSIGN_OR_RETURN(spec.chat_template, f.GetString("tokenizer.chat_template"));
  }
  return spec;
}

absl::StatusOr<TokenizerSpec> ReadGgufTokenizerSpec(const std::string& gguf_path) {
  LIL_ASSIGN_OR_RETURN(auto f, GgufFile::Open(gguf_path));
  return ReadGgufTokenizerSpec(*f);
}

}  // namespace lil
