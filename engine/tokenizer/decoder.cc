// File: engine/tokenizer/decoder.cc
// Decoder stages. Each stage receives tokens as BeginToken, Text..., EndToken and a Finish at
// the end of the sequence. Stages that need a whole token buffer it (tokens are short); Fuse and
// Strip stream, so byte-level and SentencePiece chains emit text as soon as it is final.
#include "engine/tokenizer/decoder.h"

#include <cstdio>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/utf8.h"

namespace lil {

class DecodeStage {
 public:
  virtual ~DecodeStage() = default;
  virtual void BeginToken() { next_->BeginToken(); }
  virtual void Text(std::string_view text) = 0;
  virtual void EndToken() { next_->EndToken(); }
  virtual void Finish() { next_->Finish(); }
  void set_next(DecodeStage* next) { next_ = next; }

 protected:
  void Emit(std::string_view token) {
    next_->BeginToken();
    next_->Text(token);
    next_->EndToken();
  }
  DecodeStage* next_ = nullptr;
};

namespace {

// Last stage: appends to the output, replacing invalid UTF-8 (only possible with raw
// GGUF token bytes) and holding an incomplete trailing sequence.
class CollectStage : public DecodeStage {
 public:
  explicit CollectStage(std::string* out) : out_(out) {}
  void BeginToken() override {}
  void Text(std::string_view text) override { utf8_.Feed(text, out_); }
  void EndToken() override {}
  void Finish() override { utf8_.Finish(out_); }

 private:
  std::string* out_;
  Utf8LossyStream utf8_;
};

// Collects one whole input token, then calls OnToken.
class TokenStage : public DecodeStage {
 public:
  void BeginToken() override { token_.clear(); }
  void Text(std::string_view text) override { token_.append(text); }
  void EndToken() override { OnToken(token_); }

 protected:
  virtual void OnToken(const std::string& token) = 0;
  std::string token_;
};

// Every input token becomes bytes; the output is one token of lossy UTF-8.
class ByteLevelStage : public TokenStage {
 protected:
  void OnToken(const std::string& token) override {
    if (!started_) {
      next_->BeginToken();
      started_ = true;
    }
    bytes_.clear();
    size_t pos = 0;
    bool mapped = true;
    while (pos < token.size() && mapped) {
      const auto b = UnicodeToByte(NextCodePoint(token, &pos));
      if (b) {
        bytes_.push_back(static_cast<char>(*b));
      } else {
        mapped = false;
      }
    }
    std::string text;
    utf8_.Feed(mapped ? std::string_view(bytes_) : std::string_view(token), &text);
    if (!text.empty()) next_->Text(text);
  }
  void Finish() override {
    std::string text;
    utf8_.Finish(&text);
    if (!started_) next_->BeginToken();
    if (!text.empty()) next_->Text(text);
    next_->EndToken();
    started_ = false;
    next_->Finish();
  }

 private:
  bool started_ = false;
  std::string bytes_;
  Utf8LossyStream utf8_;
};

class ReplaceStage : public TokenStage {
 public:
  ReplaceStage(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}

 protected:
  void OnToken(const std::string& token) override {
    if (pattern_.empty()) return Emit(token);
    std::string out;
    size_t pos = 0, hit;
    while ((hit = token.find(pattern_, pos)) != std::string::npos) {
      out.append(token, pos, hit - pos);
      out.append(content_);
      pos = hit + pattern_.size();
    }
    out.append(token, pos);
    Emit(out);
  }

 private:
  std::string pattern_, content_;
};

// "<0xAB>" tokens gather into a byte group; a valid group becomes its text, an invalid one
// one U+FFFD per byte (HF's rule, not from_utf8_lossy's).
class ByteFallbackStage : public TokenStage {
 protected:
  void OnToken(const std::string& token) override {
    unsigned value = 0;
    char tail = 0;
    if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>' &&
        std::sscanf(token.c_str() + 3, "%2x%c", &value, &tail) == 2 && tail == '>' &&
        std::isxdigit(static_cast<unsigned char>(token[3])) &&
        std::isxdigit(static_cast<unsigned char>(token[4]))) {
      group_.push_back(static_cast<char>(value));
      return;
    }
    FlushGroup();
    Emit(token);
  }
  void Finish() override {
    FlushGroup();
    next_->Finish();
  }

 private:
  void FlushGroup() {
    if (group_.empty()) return;
    if (IsValidUtf8(group_)) {
      Emit(group_);
    } else {
      for (size_t i = 0; i < group_.size(); ++i) Emit(kReplacementChar);
    }
    group_.clear();
  }
  std::string group_;
};

// All tokens become one.
class FuseStage : public DecodeStage {
 public:
  void BeginToken() override {
    if (!started_) next_->BeginToken();
    started_ = true;
  }
  void Text(std::string_view text) override { next_->Text(text); }
  void EndToken() override {}
  void Finish() override {
    if (!started_) next_->BeginToken();
    next_->EndToken();
    started_ = false;
    next_->Finish();
  }

 private:
  bool started_ = false;
};

// Removes up to `start` leading and `stop` trailing `content` characters of each token,
// streaming: trailing candidates are held until a different character or the token end.
class StripStage : public DecodeStage {
 public:
  StripStage(std::string content, int start, int stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void BeginToken() override {
    stripped_ = 0;
    leading_ = true;
    held_count_ = 0;
    held_.clear();
    next_->BeginToken();
  }
  void Text(std::string_view text) override {
    size_t pos = 0;
    std::string out;
    while (pos < text.size()) {
      const size_t begin = pos;
      NextCodePoint(text, &pos);
      const std::string_view ch = text.substr(begin, pos - begin);
      const bool is_content = ch == content_;
      if (leading_ && is_content && stripped_ < start_) {
        ++stripped_;
        continue;
      }
      leading_ = false;
      if (is_content && stop_ > 0) {
        held_.append(ch);
        ++held_count_;
        continue;
      }
      out += held_;
      held_.clear();
      held_count_ = 0;
      out.append(ch);
    }
    if (!out.empty()) next_->Text(out);
  }
  void EndToken() override {
    const int keep = held_count_ > stop_ ? held_count_ - stop_ : 0;
    if (keep > 0) next_->Text(held_.substr(0, keep * content_.size()));
    held_.clear();
    held_count_ = 0;
    next_->EndToken();
  }

 private:
  std::string content_;
  int start_, stop_;
  int stripped_ = 0, held_count_ = 0;
  bool leading_ = true;
  std::string held_;
};

// Replacement character -> space; in the first token every replacement is
// dropped when a prefix was prepended (HF Metaspace decoder).
class MetaspaceStage : public TokenStage {
 public:
  MetaspaceStage(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void Finish() override {
    index_ = 0;
    next_->Finish();
  }

 protected:
  void OnToken(const std::string& token) override {
    const bool drop = index_++ == 0 && strip_first_;
    std::string out;
    size_t pos = 0, hit;
    while (!replacement_.empty() && (hit = token.find(replacement_, pos)) != std::string::npos) {
      out.append(token, pos, hit - pos);
      if (!drop) out.push_back(' ');
      pos = hit + replacement_.size();
    }
    out.append(token, pos);
    Emit(out);
  }

 private:
  std::string replacement_;
  bool strip_first_;
  int64_t index_ = 0;
};

// No decoder: tokens joined by single spaces.
class JoinStage : public DecodeStage {
 public:
  void BeginToken() override {
    if (count_++ > 0) next_->Text(" ");
  }
  void Text(std::string_view text) override { next_->Text(text); }
  void EndToken() override {}
  void Finish() override {
    count_ = 0;
    next_->Finish();
  }

 private:
  int64_t count_ = 0;
};

std::unique_ptr<DecodeStage> MakeStage(const DecoderStep& step) {
  switch (step.kind) {
    case DecoderStep::Kind::kByteLevel:
      return std::make_unique<ByteLevelStage>();
    case DecoderStep::Kind::kReplace:
      return std::make_unique<ReplaceStage>(step.pattern, step.content);
    case DecoderStep::Kind::kByteFallback:
      return std::make_unique<ByteFallbackStage>();
    case DecoderStep::Kind::kFuse:
      return std::make_unique<FuseStage>();
    case DecoderStep::Kind::kStrip:
      return std::make_unique<StripStage>(step.content, step.strip_start, step.strip_stop);
    case DecoderStep::Kind::kMetaspace:
      return std::make_unique<MetaspaceStage>(step.content, step.metaspace_strip_first);
  }
  return nullptr;
}

}  // namespace

DecodeStream::DecodeStream(const DecoderConfig& config) {
  if (config.none) {
    stages_.push_back(std::make_unique<JoinStage>());
  } else {
    for (const DecoderStep& step : config.steps) stages_.push_back(MakeStage(step));
  }
  stages_.push_back(std::make_unique<CollectStage>(&output_));
  for (size_t i = 0; i + 1 < stages_.size(); ++i) stages_[i]->set_next(stages_[i + 1].get());
}

DecodeStream::~DecodeStream() = default;

void DecodeStream::PushToken(std::string_view token) {
  has_tokens_ = true;
  DecodeStage* first = stages_.front().get();
  first->BeginToken();
  first->Text(token);
  first->EndToken();
}

void DecodeStream::Finish() {
  // An empty token list decodes to "" with every supported decoder; stages then reset, so
  // the stream may continue as a new sequence.
  if (has_tokens_) stages_.front()->Finish();
  has_tokens_ = false;
}

std::string DecodeStream::TakeOutput() {
  std::string out;
  out.swap(output_);
  return out;
}

}  // namespace lil
