// File: engine/format/mapped_file.h
// A read-only memory-mapped file (RAII). Model readers hand out pointers into it, so the
// weights are paged in lazily by the OS and never copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace lil {

class MappedFile {
 public:
  // NOT_FOUND for a missing file, PERMISSION_DENIED / INVALID_ARGUMENT (a directory) /
  // INTERNAL for the rest; every message names the path. An empty file maps to size 0.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lil
