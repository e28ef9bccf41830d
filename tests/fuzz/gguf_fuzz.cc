// File: tests/fuzz/gguf_fuzz.cc
// Arbitrary bytes as a .gguf file: the reader, the metadata getters, the model config and the
// embedded tokenizer either fail with a status or give values that are safe to use (tensor
// views inside the file, tokenizer ids in range); small tensors are dequantized.
#include <vector>

#include "engine/format/dequant.h"
#include "engine/format/gguf.h"
#include "engine/format/gguf_tokenizer.h"
#include "engine/model_config.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lil::fuzz::WriteScratch("model.gguf", data, size);
  auto file = lil::GgufFile::Open(path);
  if (!file.ok()) return 0;
  const lil::GgufFile& f = **file;
  for (const std::string& key : f.keys()) {
    FUZZ_CHECK(f.FindValue(key) != nullptr, "key %s listed but not found", key.c_str());
    (void)f.GetString(key);
    (void)f.GetInt(key);
    (void)f.GetFloat(key);
    (void)f.GetStringArray(key);
    (void)f.GetIntArray(key);
    (void)f.GetFloatArray(key);
  }
  for (const lil::TensorView& t : f.tensors()) {
    auto need = lil::DTypeStorageBytes(t.dtype, t.numel());
    FUZZ_CHECK(need.has_value() && *need == t.nbytes, "%s: %zu bytes", t.name.c_str(), t.nbytes);
    FUZZ_CHECK(t.nbytes <= size, "%s: %zu bytes in a %zu-byte file", t.name.c_str(), t.nbytes, size);
    if (t.numel() > 0 && t.numel() <= (1 << 16)) {
      std::vector<float> out(t.numel());
      FUZZ_CHECK(lil::ConvertToF32(t, out.data()).ok(), "%s does not convert", t.name.c_str());
    }
  }
  (void)lil::ReadGgufConfig(f, path);
  auto spec = lil::ReadGgufTokenizerSpec(f);
  if (!spec.ok() || spec->tokens.size() > 4096) return 0;
  auto tok = lil::Tokenizer::FromSpec(*spec);
  if (!tok.ok()) return 0;
  const auto ids = (*tok)->Encode("Hello world, \xC3\xA9t\xC3\xA9 <s> 12345", true);
  for (lil::TokenId id : ids) {
    FUZZ_CHECK(id >= 0 && id < (*tok)->vocab_size(), "id %d outside vocab %d", id, (*tok)->vocab_size());
  }
  (void)(*tok)->Decode(ids, false);
  return 0;
}
