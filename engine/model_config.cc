// File: engine/model_config.cc
#include "engine/model_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "engine/format/gguf.h"

namespace lil {
namespace {

using json = nlohmann::json;

absl::StatusOr<json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return DataLoss(path, ": not a JSON object");
  return j;
}

// Reads an integer field, with a clear error when it is missing or not a number.
absl::StatusOr<int32_t> IntField(const json& j, const char* key, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) {
    return InvalidArgument(path, ": field ", key, " is missing or not an integer");
  }
  return it->get<int32_t>();
}

void AppendEos(const json& v, std::vector<TokenId>& out) {
  auto add = [&](TokenId id) {
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  };
  if (v.is_number_integer()) add(v.get<TokenId>());
  if (v.is_array()) {
    for (const auto& e : v) if (e.is_number_integer()) add(e.get<TokenId>());
  }
}

}  // namespace

std::string_view ModelFamilyName(ModelFamily f) {
  switch (f) {
    case ModelFamily::kLlama: return "llama";
    case ModelFamily::kMistral: return "mistral";
    case ModelFamily::kQwen2: return "qwen2";
    case ModelFamily::kQwen3: return "qwen3";
  }
  return "unknown";
}

std::vector<float> ModelConfig::RopeInvFreq() const {
  const int32_t half = head_dim / 2;
  std::vector<float> inv(half);
  for (int32_t i = 0; i < half; ++i) {
    inv[i] = 1.0f / std::pow(rope_theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
  }
  if (!rope_freq_factors.empty() && static_cast<int32_t>(rope_freq_factors.size()) == half) {
    for (int32_t i = 0; i < half; ++i) inv[i] /= rope_freq_factors[i];
    return inv;
  }
  const RopeScaling& rs = rope_scaling;
  if (rs.kind == RopeScaling::Kind::kLlama3) {
    const float low_wavelen = rs.original_max_position / rs.low_freq_factor;
    const float high_wavelen = rs.original_max_position / rs.high_freq_factor;
    for (float& f : inv) {
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f = f / rs.factor;
      } else {
        const float smooth = (rs.original_max_position / wavelen - rs.low_freq_factor) /
                             (rs.high_freq_factor - rs.low_freq_factor);
        f = (1.0f - smooth) * f / rs.factor + smooth * f;
      }
    }
  }
  return inv;
}

absl::Status ModelConfig::Validate() const {
  if (vocab_size <= 0 || hidden_size <= 0 || intermediate_size <= 0 || num_layers <= 0 ||
      num_heads <= 0 || num_kv_heads <= 0 || head_dim <= 0) {
    return InvalidArgument("model config: sizes must be positive (vocab ", vocab_size, ", hidden ",
                           hidden_size, ", intermediate ", intermediate_size, ", layers ",
                           num_layers, ", heads ", num_heads, ", kv heads ", num_kv_heads,
                           ", head_dim ", head_dim, ")");
  }
  if (num_heads % num_kv_heads != 0) {
    return InvalidArgument("model config: num_attention_heads ", num_heads,
                           " is not a multiple of num_key_value_heads ", num_kv_heads);
  }
  if (head_dim % 2 != 0) return InvalidArgument("model config: head_dim must be even, got ", head_dim);
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ReadHfConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  LIL_ASSIGN_OR_RETURN(json j, ReadJsonFile(path));
  ModelConfig c;
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    arch = j["architectures"][0].get<std::string>();
  }
  const std::string model_type = j.value("model_type", "");
  c.architecture = arch.empty() ? model_type : arch;
  if (arch == "LlamaForCausalLM" || model_type == "llama") {
    c.family = ModelFamily::kLlama;
  } else if (arch == "MistralForCausalLM" || model_type == "mistral") {
    c.family = ModelFamily::kMistral;
  } else if (arch == "Qwen2ForCausalLM" || model_type == "qwen2") {
    c.family = ModelFamily::kQwen2;
    c.attention_bias = true;
  } else if (arch == "Qwen3ForCausalLM" || model_type == "qwen3") {
    c.family = ModelFamily::kQwen3;
    c.qk_norm = true;
  } else {
    return absl::UnimplementedError(absl::StrCat(
        path, ": unsupported architecture '", c.architecture,
        "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"));
  }
  LIL_ASSIGN_OR_RETURN(c.vocab_size, IntField(j, "vocab_size", path));
  LIL_ASSIGN_OR_RETURN(c.hidden_size, IntField(j, "hidden_size", path));
  LIL_ASSIGN_OR_RETURN(c.intermediate_size, IntField(j, "intermediate_size", path));
  LIL_ASSIGN_OR_RETURN(c.num_layers, IntField(j, "num_hidden_layers", path));
  LIL_ASSIGN_OR_RETURN(c.num_heads, IntField(j, "num_attention_heads", path));
  c.num_kv_heads = j.contains("num_key_value_heads") && j["num_key_value_heads"].is_number_integer()
                       ? j["num_key_value_heads"].get<int32_t>()
                       : c.num_heads;
  c.head_dim = j.contains("head_dim") && j["head_dim"].is_number_integer()
                   ? j["head_dim"].get<int32_t>()
                   : (c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.rms_norm_eps = j.value("rms_norm_eps", 1e-6f);
  c.rope_theta = j.value("rope_theta", 10000.0f);
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    c.rope_theta = j["rope_parameters"].value("rope_theta", c.rope_theta);
  }
  c.max_position_embeddings = j.value("max_position_embeddings", 4096);
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  if (j.contains("attention_bias") && j["attention_bias"].is_boolean()) {
    c.attention_bias = j["attention_bias"].get<bool>();
  }
  const json* rs = nullptr;
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) rs = &j["rope_scaling"];
  if (rs == nullptr && j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    rs = &j["rope_parameters"];
  }
  if (rs != nullptr) {
    const std::string type = rs->value("rope_type", rs->value("type", "default"));
    if (type == "llama3") {
      c.rope_scaling.kind = RopeScaling::Kind::kLlama3;
      c.rope_scaling.factor = rs->value("factor", 8.0f);
      c.rope_scaling.low_freq_factor = rs->value("low_freq_factor", 1.0f);
      c.rope_scaling.high_freq_factor = rs->value("high_freq_factor", 4.0f);
      c.rope_scaling.original_max_position = rs->value("original_max_position_embeddings", 8192);
    } else if (type != "default") {
      return absl::UnimplementedError(
          absl::StrCat(path, ": rope_scaling type '", type, "' is not supported (default, llama3)"));
    }
  }
  if (j.contains("eos_token_id")) AppendEos(j["eos_token_id"], c.eos_token_ids);
  const std::string gen_path = model_dir + "/generation_config.json";
  if (std::filesystem::exists(gen_path)) {
    LIL_ASSIGN_OR_RETURN(json g, ReadJsonFile(gen_path));
    if (g.contains("eos_token_id")) AppendEos(g["eos_token_id"], c.eos_token_ids);
  }
  LIL_RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<ModelConfig> ReadGgufConfig(const GgufFile& gguf, const std::string& path) {
  LIL_ASSIGN_OR_RETURN(std::string arch, gguf.GetString("general.architecture"));
  ModelConfig c;
  c.architecture = arch;
  if (arch == "llama") {
    c.family = ModelFamily::kLlama;
  } else if (arch == "qwen2") {
    c.family = ModelFamily::kQwen2;
    c.attention_bias = true;
  } else if (arch == "qwen3") {
    c.family = ModelFamily::kQwen3;
    c.qk_norm = true;
  } else {
    return absl::UnimplementedError(absl::StrCat(path, ": unsupported GGUF architecture '", arch,
                                                 "' (supported: llama, qwen2, qwen3)"));
  }
  auto get_int = [&](const std::string& key) -> absl::StatusOr<int32_t> {
    LIL_ASSIGN_OR_RETURN(int64_t v, gguf.GetInt(arch + "." + key));
    return static_cast<int32_t>(v);
  };
  LIL_ASSIGN_OR_RETURN(c.num_layers, get_int("block_count"));
  LIL_ASSIGN_OR_RETURN(c.hidden_size, get_int("embedding_length"));
  LIL_ASSIGN_OR_RETURN(c.intermediate_size, get_int("feed_forward_length"));
  LIL_ASSIGN_OR_RETURN(c.num_heads, get_int("attention.head_count"));
  c.num_kv_heads = gguf.Has(arch + ".attention.head_count_kv")
                       ? get_int("attention.head_count_kv").value_or(c.num_heads)
                       : c.num_heads;
  c.head_dim = gguf.Has(arch + ".attention.key_length")
                   ? get_int("attention.key_length").value_or(0)
                   : (c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  if (gguf.Has(arch + ".context_length")) {
    c.max_position_embeddings = get_int("context_length").value_or(4096);
  }
  if (gguf.Has(arch + ".rope.freq_base")) {
    c.rope_theta = static_cast<float>(gguf.GetFloat(arch + ".rope.freq_base").value_or(10000.0));
  }
  if (gguf.Has(arch + ".attention.layer_norm_rms_epsilon")) {
    c.rms_norm_eps =
        static_cast<float>(gguf.GetFloat(arch + ".attention.layer_norm_rms_epsilon").value_or(1e-6));
  }
  if (gguf.Has(arch + ".vocab_size")) {
    LIL_ASSIGN_OR_RETURN(c.vocab_size, get_int("vocab_size"));
  } else {
    LIL_ASSIGN_OR_RETURN(auto tokens, gguf.GetStringArray("tokenizer.ggml.tokens"));
    c.vocab_size = static_cast<int32_t>(tokens.size());
  }
  c.tie_word_embeddings = gguf.Find("output.weight") == nullptr;
  if (gguf.Has("tokenizer.ggml.eos_token_id")) {
    LIL_ASSIGN_OR_RETURN(int64_t eos, gguf.GetInt("tokenizer.ggml.eos_token_id"));
    c.eos_token_ids.push_back(static_cast<TokenId>(eos));
  }
  if (gguf.Has("tokenizer.ggml.eot_token_id")) {
    LIL_ASSIGN_OR_RETURN(int64_t eot, gguf.GetInt("tokenizer.ggml.eot_token_id"));
    if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), eot) == c.eos_token_ids.end()) {
      c.eos_token_ids.push_back(static_cast<TokenId>(eot));
    }
  }
  LIL_RETURN_IF_ERROR(c.Validate());
  return c;
}

}  // namespace lil
