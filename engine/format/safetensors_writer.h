// File: engine/format/safetensors_writer.h
// Writes safetensors files in a streaming way: the header (all shapes known up front) goes
// first, then each tensor's bytes are written at fixed offsets from any thread, so a 16 GB
// checkpoint never sits in memory. Also plans shards and writes the sharded-set index.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/format/tensor.h"

namespace lil {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;     // F32, F16 or BF16
  std::vector<int64_t> shape;    // PyTorch order
  uint64_t nbytes() const;       // numel * element size
};

class SafetensorsWriter {
 public:
  // Creates `path` (truncating it), writes the header and sizes the file. Tensors are laid
  // out in the given order, each aligned to 8 bytes from the start of the data section.
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::string& path, std::vector<TensorSpec> tensors,
      const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Writes `size` bytes at `offset` within tensor `index`'s data. Safe to call from several
  // threads at once for disjoint ranges.
  absl::Status Write(size_t index, uint64_t offset, const void* data, size_t size);
  // Flushes and closes; the file is complete only after this returns OK.
  absl::Status Close();

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  uint64_t file_size() const { return file_size_; }

 private:
  SafetensorsWriter() = default;
  std::string path_;
  int fd_ = -1;
  std::vector<TensorSpec> tensors_;
  std::vector<uint64_t> data_offsets_;  // absolute file offset of each tensor's bytes
  uint64_t file_size_ = 0;
};

// Groups tensors, in order, into shards of at most `max_shard_bytes` of data each (a tensor
// larger than that gets a shard of its own). One shard when everything fits.
std::vector<std::vector<TensorSpec>> PlanShards(const std::vector<TensorSpec>& tensors,
                                                uint64_t max_shard_bytes);
// "model.safetensors" for a single shard, else "model-00001-of-00004.safetensors" (1-based).
std::string ShardFileName(size_t index, size_t count);
// Writes <dir>/model.safetensors.index.json mapping each tensor to its shard file.
absl::Status WriteSafetensorsIndex(const std::string& dir,
                                   const std::vector<std::vector<TensorSpec>>& shards);

}  // namespace lil
