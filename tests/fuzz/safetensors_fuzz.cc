// File: tests/fuzz/safetensors_fuzz.cc
// Arbitrary bytes as a .safetensors file: OpenFile either fails with a status or hands out
// views that lie inside the file, whose byte counts match dtype x shape, and that convert to
// fp32 without reading past their end.
#include <vector>

#include "engine/format/dequant.h"
#include "engine/format/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lil::fuzz::WriteScratch("model.safetensors", data, size);
  auto model = lil::SafetensorsModel::OpenFile(path);
  if (!model.ok()) {
    FUZZ_CHECK(model.status().message().find(path) != std::string::npos,
               "error does not name the file: %s", std::string(model.status().message()).c_str());
    return 0;
  }
  for (const lil::TensorView& t : (*model)->tensors()) {
    // The file's bytes are the input's: a view must be a sub-range of them.
    auto need = lil::DTypeStorageBytes(t.dtype, t.numel());
    FUZZ_CHECK(need.has_value() && *need == t.nbytes, "%s: %zu bytes", t.name.c_str(), t.nbytes);
    FUZZ_CHECK(t.nbytes <= size, "%s: %zu bytes in a %zu-byte file", t.name.c_str(), t.nbytes, size);
    FUZZ_CHECK((*model)->Find(t.name) != nullptr, "%s not found by name", t.name.c_str());
    if (t.numel() > 0 && t.numel() <= (1 << 16)) {
      std::vector<float> out(t.numel());
      FUZZ_CHECK(lil::ConvertToF32(t, out.data()).ok(), "%s does not convert", t.name.c_str());
    }
  }
  return 0;
}
