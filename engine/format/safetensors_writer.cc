// File: engine/format/safetensors_writer.cc
// Streaming safetensors writer: header up front, then pwrite() of tensor bytes at fixed
// offsets (thread-safe for disjoint ranges), plus shard planning and the index file.
#include "engine/format/safetensors_writer.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "engine/format/string_view_compat.h"

namespace lil {
namespace {

using json = nlohmann::json;

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(AsAbsl(what), " ", path, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, const void* data, size_t size, uint64_t offset, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("cannot write", path);
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t TensorSpec::nbytes() const {
  TensorView v;
  v.shape = shape;
  return DTypeStorageBytes(dtype, v.numel()).value_or(0);
}

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, std::vector<TensorSpec> tensors,
    const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<uint64_t> rel_offsets;
  uint64_t offset = 0;
  absl::flat_hash_set<std::string> seen;
  for (const TensorSpec& t : tensors) {
    if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16) {
      return InvalidArgument(path, ": tensor ", t.name, ": safetensors cannot hold ",
                             AsAbsl(DTypeName(t.dtype)));
    }
    if (t.name.empty() || t.name == "__metadata__" || !seen.insert(t.name).second) {
      return InvalidArgument(path, ": tensor name \"", t.name, "\" is empty, reserved or repeated");
    }
    const uint64_t n = t.nbytes();
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))}, {"shape", t.shape},
                      {"data_offsets", {offset, offset + n}}};
    rel_offsets.push_back(offset);
    offset += (n + 7) / 8 * 8;  // keep every tensor 8-byte aligned for zero-copy readers
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  std::unique_ptr<SafetensorsWriter> w(new SafetensorsWriter());
  w->path_ = path;
  w->tensors_ = std::move(tensors);
  const uint64_t data_start = 8 + text.size();
  for (uint64_t r : rel_offsets) w->data_offsets_.push_back(data_start + r);
  w->file_size_ = data_start + offset;
  w->fd_ = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (w->fd_ < 0) return Errno("cannot create", path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  LIL_RETURN_IF_ERROR(WriteAll(w->fd_, len, 8, 0, path));
  LIL_RETURN_IF_ERROR(WriteAll(w->fd_, text.data(), text.size(), 8, path));
  if (::ftruncate(w->fd_, static_cast<off_t>(w->file_size_)) != 0) return Errno("cannot size", path);
  return w;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status SafetensorsWriter::Write(size_t index, uint64_t offset, const void* data, size_t size) {
  if (index >= tensors_.size()) return InvalidArgument(path_, ": no tensor #", index);
  const uint64_t n = tensors_[index].nbytes();
  if (offset > n || size > n - offset) {
    return InvalidArgument(path_, ": tensor ", tensors_[index].name, ": write of ", size,
                           " bytes at ", offset, " exceeds its ", n, " bytes");
  }
  return WriteAll(fd_, data, size, data_offsets_[index] + offset, path_);
}

absl::Status SafetensorsWriter::Close() {
  if (fd_ < 0) return absl::OkStatus();
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return Errno("cannot close", path_);
  return absl::OkStatus();
}

std::vector<std::vector<TensorSpec>> PlanShards(const std::vector<TensorSpec>& tensors,
                                                uint64_t max_shard_bytes) {
  std::vector<std::vector<TensorSpec>> shards(1);
  uint64_t current = 0;
  for (const TensorSpec& t : tensors) {
    const uint64_t n = t.nbytes();
    if (!shards.back().empty() && current + n > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(t);
    current += n;
  }
  return shards;
}

std::string ShardFileName(size_t index, size_t count) {
  if (count <= 1) return "model.safetensors";
  return absl::StrFormat("model-%05d-of-%05d.safetensors", index + 1, count);
}

absl::Status WriteSafetensorsIndex(const std::string& dir,
                                   const std::vector<std::vector<TensorSpec>>& shards) {
  json weight_map = json::object();
  uint64_t total = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    for (const TensorSpec& t : shards[i]) {
      weight_map[t.name] = ShardFileName(i, shards.size());
      total += t.nbytes();
    }
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string path = (std::filesystem::path(dir) / "model.safetensors.index.json").string();
  std::ofstream out(path);
  out << index.dump(2) << "\n";
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace lil
