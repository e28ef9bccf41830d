// File: tests/fuzz/fuzz_util.h
// Helpers shared by the libFuzzer targets: the readers under test take file paths, so each
// input is written to a per-process scratch file (tmpfs when there is one); FUZZ_CHECK turns a
// broken invariant into an abort that libFuzzer (or the replay driver) reports as a crash.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace lil::fuzz {

// A scratch directory private to this process, removed at exit.
inline const std::filesystem::path& ScratchDir() {
  static const std::filesystem::path dir = [] {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec)
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("lilserve_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    static struct Cleanup {
      std::filesystem::path p;
      ~Cleanup() {
        std::error_code e;
        std::filesystem::remove_all(p, e);
      }
    } cleanup{d};
    return d;
  }();
  return dir;
}

// Writes the input to `name` in the scratch directory and returns the path.
inline std::string WriteScratch(const std::string& name, const uint8_t* data, size_t size) {
  const std::filesystem::path p = ScratchDir() / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return p.string();
}

// A file of the repository (LILSERVE_ROOT, else the working directory).
inline std::string RepoPath(const std::string& rel) {
  const char* root = std::getenv("LILSERVE_ROOT");
  return (std::filesystem::path(root != nullptr ? root : ".") / rel).string();
}

}  // namespace lil::fuzz

#define FUZZ_CHECK(cond, ...)                                              \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, "  " __VA_ARGS__);                              \
      std::fprintf(stderr, "\n");                                          \
      std::abort();                                                        \
    }                                                                      \
  } while (0)
