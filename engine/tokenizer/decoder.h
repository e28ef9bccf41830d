// File: engine/tokenizer/decoder.h
// Decoding ids to text as a stream. The tokenizer.json decoder chain (ByteLevel, Replace,
// ByteFallback, Fuse, Strip, Metaspace) runs as a pipeline of stages that see tokens one at a
// time, so Tokenizer::Decode and the incremental detokenizer are the same machine and agree
// byte for byte with HF tokenizers' decode (added tokens' text goes through the chain too).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lil {

struct DecoderStep {
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  Kind kind = Kind::kByteLevel;
  std::string pattern, content;  // kReplace: pattern -> content; kStrip/kMetaspace: content char
  int strip_start = 0, strip_stop = 0;  // kStrip
  bool metaspace_strip_first = true;    // kMetaspace: prepend_scheme != never
};

// The configured chain. An empty chain with `none` set means "no decoder": tokens are joined
// with single spaces, as HF does.
struct DecoderConfig {
  std::vector<DecoderStep> steps;
  bool none = true;
};

class DecodeStage;

// Stateful decoder: feed tokens, take the finished text. Never emits a partial UTF-8
// sequence; text that later tokens may still change is held back until they arrive.
class DecodeStream {
 public:
  explicit DecodeStream(const DecoderConfig& config);
  ~DecodeStream();
  DecodeStream(const DecodeStream&) = delete;
  DecodeStream& operator=(const DecodeStream&) = delete;

  // The token's vocabulary string (an added token's content).
  void PushToken(std::string_view token);
  // Ends the stream: everything held back is resolved and emitted.
  void Finish();
  // Returns the text completed since the last call.
  std::string TakeOutput();

 private:
  std::string output_;
  std::vector<std::unique_ptr<DecodeStage>> stages_;  // stages_.back() writes output_
  bool has_tokens_ = false;
};

}  // namespace lil
