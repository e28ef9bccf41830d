// File: engine/format/safetensors.cc
// safetensors reader: [u64 header_len][JSON header][data]. Every entry of the header is
// validated against the file before a TensorView is handed out.
#include "engine/format/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/format/string_view_compat.h"

namespace lil {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit is 100 MB

absl::StatusOr<DType> ParseDType(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  return absl::UnimplementedError(absl::StrCat("dtype \"", s, "\" is not supported (F32, F16, BF16 are)"));
}

absl::StatusOr<std::vector<int64_t>> ParseShape(const json& j) {
  if (!j.is_array()) return InvalidArgument("\"shape\" is not an array");
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (const json& d : j) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
      return InvalidArgument("\"shape\" has a non-integer or negative entry ", d.dump());
    }
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, static_cast<int64_t>(v), &numel)) {
      return InvalidArgument("\"shape\" ", j.dump(), " overflows");
    }
    shape.push_back(static_cast<int64_t>(v));
  }
  return shape;
}

// Parses one header entry into `t` (offsets relative to the data section, checked against
// its size `data_size`).
absl::Status ParseEntry(const std::string& name, const json& e, uint64_t data_size,
                        TensorView* t, uint64_t* begin) {
  if (!e.is_object()) return InvalidArgument("entry is not an object");
  auto dtype_it = e.find("dtype");
  auto shape_it = e.find("shape");
  auto offs_it = e.find("data_offsets");
  if (dtype_it == e.end() || !dtype_it->is_string()) return InvalidArgument("missing string \"dtype\"");
  if (shape_it == e.end()) return InvalidArgument("missing \"shape\"");
  if (offs_it == e.end() || !offs_it->is_array() || offs_it->size() != 2 ||
      !(*offs_it)[0].is_number_unsigned() || !(*offs_it)[1].is_number_unsigned()) {
    return InvalidArgument("\"data_offsets\" must be two non-negative integers");
  }
  LIL_ASSIGN_OR_RETURN(t->dtype, ParseDType(dtype_it->get<std::string>()));
  LIL_ASSIGN_OR_RETURN(t->shape, ParseShape(*shape_it));
  const uint64_t b = (*offs_it)[0].get<uint64_t>();
  const uint64_t end = (*offs_it)[1].get<uint64_t>();
  if (b > end || end > data_size) {
    return InvalidArgument("data_offsets [", b, ", ", end, "] out of range (data section is ",
                           data_size, " bytes)");
  }
  auto need = DTypeStorageBytes(t->dtype, t->numel());
  if (!need.has_value() || *need != end - b) {
    return InvalidArgument("shape ", t->ShapeString(), " of ", AsAbsl(DTypeName(t->dtype)), " needs ",
                           need.value_or(0), " bytes but data_offsets span ", end - b);
  }
  t->name = name;
  t->nbytes = end - b;
  *begin = b;
  return absl::OkStatus();
}

absl::StatusOr<json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(path, ": not valid JSON");
  return j;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsModel>> SafetensorsModel::OpenFile(const std::string& path) {
  std::unique_ptr<SafetensorsModel> m(new SafetensorsModel());
  LIL_RETURN_IF_ERROR(m->AddFile(path, nullptr));
  m->BuildIndex();
  return m;
}

absl::StatusOr<std::unique_ptr<SafetensorsModel>> SafetensorsModel::Open(const std::string& model_dir) {
  std::error_code ec;
  if (fs::is_regular_file(model_dir, ec)) return OpenFile(model_dir);
  if (!fs::is_directory(model_dir, ec)) {
    return absl::NotFoundError(absl::StrCat("model path ", model_dir, " does not exist"));
  }
  const fs::path dir(model_dir);
  const fs::path index_path = dir / "model.safetensors.index.json";
  if (!fs::exists(index_path, ec)) {
    const fs::path single = dir / "model.safetensors";
    if (!fs::exists(single, ec)) {
      return absl::NotFoundError(absl::StrCat(model_dir, " has neither model.safetensors.index.json nor model.safetensors"));
    }
    return OpenFile(single.string());
  }
  LIL_ASSIGN_OR_RETURN(json index, ReadJsonFile(index_path.string()));
  auto wm = index.is_object() ? index.find("weight_map") : index.end();
  if (wm == index.end() || !wm->is_object()) {
    return InvalidArgument(index_path.string(), ": missing object \"weight_map\"");
  }
  // shard file -> tensor names
  std::vector<std::string> shard_order;
  absl::flat_hash_map<std::string, std::vector<std::string>> names_by_shard;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string()) {
      return InvalidArgument(index_path.string(), ": weight_map[\"", it.key(), "\"] is not a string");
    }
    std::string shard = it->get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "..") {
      return InvalidArgument(index_path.string(), ": weight_map[\"", it.key(), "\"] = \"", shard,
                             "\" is not a file name in the model directory");
    }
    auto [slot, inserted] = names_by_shard.try_emplace(shard);
    if (inserted) shard_order.push_back(shard);
    slot->second.push_back(it.key());
  }
  std::sort(shard_order.begin(), shard_order.end());  // model-00001-of-N first
  std::unique_ptr<SafetensorsModel> m(new SafetensorsModel());
  for (const std::string& shard : shard_order) {
    const std::string shard_path = (dir / shard).string();
    if (!fs::exists(shard_path, ec)) {
      return absl::NotFoundError(absl::StrCat(index_path.string(), " names shard ", shard,
                                              " which is missing from ", model_dir));
    }
    LIL_RETURN_IF_ERROR(m->AddFile(shard_path, &names_by_shard[shard]));
  }
  m->BuildIndex();
  if (m->index_.size() != m->tensors_.size()) {
    return InvalidArgument(model_dir, ": a tensor name appears in more than one shard");
  }
  return m;
}

absl::Status SafetensorsModel::AddFile(const std::string& path,
                                       const std::vector<std::string>* only_names) {
  LIL_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  const uint8_t* p = file->data();
  const uint64_t size = file->size();
  if (size < 8) return DataLoss(path, ": ", size, " bytes is too short for a safetensors header");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | p[i];
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    return DataLoss(path, ": header length ", header_len, " exceeds the file (", size, " bytes)");
  }
  json header = json::parse(p + 8, p + 8 + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return DataLoss(path, ": header is not a JSON object");
  }
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  std::vector<std::pair<uint64_t, TensorView>> found;  // (begin offset, view)
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    TensorView t;
    uint64_t begin = 0;
    absl::Status s = ParseEntry(it.key(), it.value(), data_size, &t, &begin);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat(path, ": tensor ", it.key(), ": ", s.message()));
    }
    t.data = p + data_start + begin;
    found.emplace_back(begin, std::move(t));
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < found.size(); ++i) {
    const auto& prev = found[i - 1];
    if (prev.first + prev.second.nbytes > found[i].first) {
      return DataLoss(path, ": tensors ", prev.second.name, " and ", found[i].second.name,
                      " overlap");
    }
  }
  if (only_names != nullptr) {
    absl::flat_hash_set<std::string> present;
    for (const auto& [b, t] : found) present.insert(t.name);
    for (const std::string& n : *only_names) {
      if (!present.contains(n)) {
        return absl::NotFoundError(absl::StrCat("tensor ", n, " is mapped to ", path,
                                                " by the index but is not in that file"));
      }
    }
  }
  for (auto& [b, t] : found) tensors_.push_back(std::move(t));
  files_.push_back(std::move(file));
  return absl::OkStatus();
}

void SafetensorsModel::BuildIndex() {
  index_.clear();
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

const TensorView* SafetensorsModel::Find(std::string_view name) const {
  auto it = index_.find(AsAbsl(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::vector<std::string> SafetensorsModel::file_paths() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

}  // namespace lil
