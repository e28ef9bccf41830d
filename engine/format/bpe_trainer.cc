// File: engine/format/bpe_trainer.cc
// Greedy BPE training over word counts (the classic Sennrich et al. loop; the corpus is a
// few KB, so recounting pairs after each merge is fast enough and keeps the code short).
#include "engine/format/bpe_trainer.h"

#include <cctype>
#include <map>

#include "absl/container/flat_hash_map.h"

namespace lil {
namespace {

std::string CodepointToUtf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {  // the alphabet only needs code points below 0x800
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// Splits text into GPT-2-like words: ' '? letters+ | ' '? digits+ | ' '? other+ | spaces.
std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> words;
  auto kind = [](unsigned char c) { return std::isalpha(c) ? 1 : std::isdigit(c) ? 2 : std::isspace(c) ? 3 : 4; };
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    if (text[i] == ' ' && i + 1 < text.size() && kind(text[i + 1]) != 3) ++i;
    const int k = kind(static_cast<unsigned char>(text[i]));
    while (i < text.size() && kind(static_cast<unsigned char>(text[i])) == k) ++i;
    words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

}  // namespace

const std::vector<std::string>& ByteToUnicode() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t[b] = CodepointToUtf8(printable ? b : 256 + extra++);
    }
    return t;
  }();
  return table;
}

std::vector<std::pair<std::string, std::string>> LearnByteLevelMerges(std::string_view text,
                                                                      int max_merges) {
  // Each distinct word as a sequence of symbols, with its count.
  std::map<std::string, int> counts;
  for (const std::string& w : Words(text)) ++counts[w];
  std::vector<std::pair<std::vector<std::string>, int>> words;
  for (const auto& [w, c] : counts) {
    std::vector<std::string> symbols;
    for (unsigned char b : w) symbols.push_back(ByteToUnicode()[b]);
    words.emplace_back(std::move(symbols), c);
  }
  std::vector<std::pair<std::string, std::string>> merges;
  while (static_cast<int>(merges.size()) < max_merges) {
    std::map<std::pair<std::string, std::string>, int> pairs;  // ordered: deterministic ties
    for (const auto& [symbols, c] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += c;
    }
    const std::pair<std::string, std::string>* best = nullptr;
    int best_count = 1;
    for (const auto& [p, c] : pairs) {
      if (c > best_count) { best = &p; best_count = c; }
    }
    if (best == nullptr) break;
    const auto merge = *best;
    merges.push_back(merge);
    for (auto& [symbols, c] : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == merge.first && symbols[i + 1] == merge.second) {
          out.push_back(merge.first + merge.second);
          ++i;
        } else {
          out.push_back(symbols[i]);
        }
      }
      symbols = std::move(out);
    }
  }
  return merges;
}

std::string_view TokenizerTrainingText() {
  return
      "The server reads a model from a directory of files, maps the weights into memory and "
      "waits for requests. Each request carries a prompt, a few sampling settings and a limit "
      "on the number of new tokens. The scheduler gathers the waiting requests into a batch, "
      "and the engine runs one step of the model for every request in the batch at the same "
      "time. When a request has produced the token that ends it, or has reached its limit, the "
      "scheduler frees the pages of its cache and another request takes its place.\n"
      "In the beginning of the project there was only a plan written on a single page. The "
      "plan said that the tree of folders is the architecture, that every layer depends only "
      "on the layers below it, and that every test should fail when the code is wrong. The "
      "engineers read the plan, divided the work between them and started to write the code.\n"
      "Tokens are small pieces of text: a whole word such as the, a part of a longer word, a "
      "number like 2024 or 3.14, or a mark of punctuation. A tokenizer learns which pieces are "
      "common by counting pairs of symbols in a text and merging the pair that is seen most "
      "often, again and again, until it has learned as many merges as it was asked for.\n"
      "Questions and answers:\n"
      "Q: What is the capital of France? A: The capital of France is Paris.\n"
      "Q: How many days are there in a week? A: There are seven days in a week.\n"
      "Q: What is 12 plus 30? A: 12 plus 30 is 42.\n"
      "Q: Which planet is the largest in the solar system? A: Jupiter is the largest planet.\n"
      "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(add(i, i * 2))\n"
      "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
      "Peter Piper picked a peck of pickled peppers. How much wood would a woodchuck chuck if a "
      "woodchuck could chuck wood? It was the best of times, it was the worst of times; it was "
      "the age of wisdom, it was the age of foolishness. All happy families are alike; each "
      "unhappy family is unhappy in its own way. Call me Ishmael. Some years ago, never mind how "
      "long precisely, having little or no money in my purse, and nothing particular to interest "
      "me on shore, I thought I would sail about a little and see the watery part of the world.\n"
      "Measurements: the step took 12.5 ms at batch 1 and 30.2 ms at batch 32; the cache held "
      "4096 pages of 16 tokens each, and the monitor stopped 17 of 250 requests early.\n";
}

}  // namespace lil
