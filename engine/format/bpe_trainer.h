// File: engine/format/bpe_trainer.h
// A small byte-level BPE trainer, enough to give random checkpoints a real (if tiny)
// tokenizer: the GPT-2 byte<->unicode alphabet and merges learned greedily from a text.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lil {

// The GPT-2 byte-level alphabet: ByteToUnicode()[b] is the UTF-8 text of byte b's symbol
// ("Ġ" for ' ', "!" for '!'). Printable bytes map to themselves.
const std::vector<std::string>& ByteToUnicode();

// Learns up to `max_merges` merges from `text`: words (an optional leading space plus a run
// of letters, of digits or of other non-space bytes) are counted, then the most frequent
// adjacent pair is merged repeatedly (ties broken by the pair's text, so the result is
// deterministic). Stops early when no pair occurs twice. Pairs are in byte-level form.
std::vector<std::pair<std::string, std::string>> LearnByteLevelMerges(std::string_view text,
                                                                      int max_merges);

// A fixed English text (a few KB) to learn merges from, so generated tokenizers are the same
// on every machine.
std::string_view TokenizerTrainingText();

}  // namespace lil
