// File: tests/engine/format/format_probe.cc
// Test helper for the Python reference tests: opens a GGUF file or a safetensors model with
// lil_format and dumps metadata (meta.json) and tensors (raw F32 / BF16 files) so the
// scripts can compare them with the gguf and safetensors packages.
//
//   format_probe gguf FILE OUTDIR [--bf16] [NAME...]     (no NAME: every tensor)
//   format_probe safetensors DIR OUTDIR [--bf16] [NAME...]
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/format/dequant.h"
#include "engine/format/gguf.h"
#include "engine/format/gguf_tokenizer.h"
#include "engine/format/safetensors.h"

namespace {

using json = nlohmann::json;

json ValueToJson(const lil::GgufValue& v) {
  using lil::GgufType;
  switch (v.type) {
    case GgufType::kString: return v.string_value;
    case GgufType::kF32: case GgufType::kF64: return v.float_value;
    case GgufType::kBool: return v.int_value != 0;
    case GgufType::kU64: return v.u64_value;
    case GgufType::kArray: {
      json a = json::array();
      if (v.array_type == GgufType::kString) for (auto& s : v.strings) a.push_back(s);
      else if (v.array_type == GgufType::kF32 || v.array_type == GgufType::kF64) for (double f : v.floats) a.push_back(f);
      else if (v.array_type == GgufType::kArray) for (auto& e : v.arrays) a.push_back(ValueToJson(e));
      else if (v.array_type == GgufType::kBool) for (auto i : v.ints) a.push_back(i != 0);
      else for (auto i : v.ints) a.push_back(i);
      return a;
    }
    default: return v.int_value;
  }
}

bool WriteFile(const std::string& path, const void* data, size_t n) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  return static_cast<bool>(out);
}

// Dumps the selected tensors as <index>.f32 (and <index>.bf16); returns the tensor list JSON.
int DumpTensors(const std::vector<lil::TensorView>& tensors, const std::set<std::string>& names,
                bool bf16, const std::string& outdir, json* out) {
  *out = json::array();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const lil::TensorView& t = tensors[i];
    json e = {{"name", t.name}, {"dtype", std::string(lil::DTypeName(t.dtype))},
              {"shape", t.shape}, {"nbytes", t.nbytes}, {"dumped", false}};
    if (names.empty() || names.count(t.name)) {
      std::vector<float> f(t.numel());
      absl::Status s = lil::ConvertToF32(t, f.data());
      if (!s.ok()) { std::fprintf(stderr, "%s\n", s.ToString().c_str()); return 1; }
      WriteFile(outdir + "/" + std::to_string(i) + ".f32", f.data(), f.size() * 4);
      if (bf16) {
        std::vector<uint16_t> b(t.numel());
        s = lil::ConvertToBF16(t, b.data());
        if (!s.ok()) { std::fprintf(stderr, "%s\n", s.ToString().c_str()); return 1; }
        WriteFile(outdir + "/" + std::to_string(i) + ".bf16", b.data(), b.size() * 2);
      }
      e["dumped"] = true;
    }
    out->push_back(e);
  }
  return 0;
}

int ProbeGguf(const std::string& path, const std::string& outdir, const std::set<std::string>& names, bool bf16) {
  auto f = lil::GgufFile::Open(path);
  if (!f.ok()) { std::fprintf(stderr, "%s\n", f.status().ToString().c_str()); return 2; }
  const lil::GgufFile& g = **f;
  json meta = {{"version", g.version()}, {"alignment", g.alignment()}, {"data_offset", g.data_offset()}};
  json kv = json::object(), types = json::object();
  for (const std::string& k : g.keys()) {
    kv[k] = ValueToJson(*g.FindValue(k));
    types[k] = g.FindValue(k)->TypeString();
  }
  meta["kv"] = kv;
  meta["kv_types"] = types;
  auto spec = lil::ReadGgufTokenizerSpec(g);
  if (spec.ok()) {
    auto id = [](std::optional<int32_t> v) { return v ? json(*v) : json(nullptr); };
    meta["tokenizer"] = {{"model", spec->model}, {"pre", spec->pre}, {"n_tokens", spec->tokens.size()},
                         {"n_merges", spec->merges.size()}, {"n_scores", spec->scores.size()},
                         {"n_token_types", spec->token_types.size()},
                         {"bos", id(spec->bos_id)}, {"eos", id(spec->eos_id)}, {"pad", id(spec->pad_id)},
                         {"unk", id(spec->unk_id)}, {"add_bos", spec->add_bos}, {"add_eos", spec->add_eos},
                         {"chat_template", spec->chat_template}};
  } else {
    meta["tokenizer_error"] = std::string(spec.status().message());
  }
  json tensors;
  if (int rc = DumpTensors(g.tensors(), names, bf16, outdir, &tensors)) return rc;
  meta["tensors"] = tensors;
  std::ofstream(outdir + "/meta.json") << meta.dump(1, ' ', false, json::error_handler_t::replace);
  return 0;
}

int ProbeSafetensors(const std::string& dir, const std::string& outdir, const std::set<std::string>& names, bool bf16) {
  auto m = lil::SafetensorsModel::Open(dir);
  if (!m.ok()) { std::fprintf(stderr, "%s\n", m.status().ToString().c_str()); return 2; }
  json meta = {{"files", (*m)->file_paths()}};
  json tensors;
  if (int rc = DumpTensors((*m)->tensors(), names, bf16, outdir, &tensors)) return rc;
  meta["tensors"] = tensors;
  std::ofstream(outdir + "/meta.json") << meta.dump(1);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: format_probe gguf|safetensors PATH OUTDIR [--bf16] [NAME...]\n");
    return 64;
  }
  const std::string mode = argv[1];
  std::set<std::string> names;
  bool bf16 = false;
  for (int i = 4; i < argc; ++i) {
    if (std::string(argv[i]) == "--bf16") bf16 = true;
    else names.insert(argv[i]);
  }
  if (mode == "gguf") return ProbeGguf(argv[2], argv[3], names, bf16);
  if (mode == "safetensors") return ProbeSafetensors(argv[2], argv[3], names, bf16);
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 64;
}
