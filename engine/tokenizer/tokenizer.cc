// File: engine/tokenizer/tokenizer.cc
// Encode: added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor, per HF.
// Decode: a DecodeStream over the ids (see decoder.h).
#include "engine/tokenizer/tokenizer.h"

#include "engine/tokenizer/string_view_compat.h"
#include "engine/tokenizer/tokenizer_parts.h"
#include "engine/tokenizer/utf8.h"

namespace lil {

void FinishParts(TokenizerParts* parts) {
  parts->id_to_token = parts->model.id_to_token();
  for (const AddedToken& t : parts->added_tokens) {
    if (t.id < 0) continue;
    if (static_cast<size_t>(t.id) >= parts->id_to_token.size()) parts->id_to_token.resize(t.id + 1);
  }
  const size_t n = parts->id_to_token.size();
  parts->is_added.assign(n, 0);
  parts->is_special.assign(n, 0);
  for (const AddedToken& t : parts->added_tokens) {
    if (t.id < 0) continue;
    parts->id_to_token[t.id] = t.content;
    parts->is_added[t.id] = 1;
    parts->is_special[t.id] = t.special ? 1 : 0;
    parts->added_to_id.try_emplace(t.content, t.id);
    if (t.normalized) {
      std::string pattern =
          parts->normalizer.empty() ? t.content : parts->normalizer.Apply(t.content);
      parts->normalized_matcher.Add(t, std::move(pattern));
    } else {
      parts->raw_matcher.Add(t, t.content);
    }
  }
}

Tokenizer::Tokenizer(std::unique_ptr<TokenizerParts> parts) : parts_(std::move(parts)) {}
Tokenizer::~Tokenizer() = default;

void Tokenizer::EncodeSegment(std::string_view text, bool at_origin,
                              std::vector<TokenId>* ids) const {
  for (const PreToken& word : parts_->pre_tokenizer.Apply(text, at_origin)) {
    parts_->model.EncodeWord(word.text, ids);
  }
}

std::vector<TokenId> Tokenizer::Encode(std::string_view input, bool add_special_tokens) const {
  std::string repaired;
  if (!IsValidUtf8(input)) {
    repaired = ToValidUtf8(input);
    input = repaired;
  }
  std::vector<TokenId> ids;
  ids.reserve(input.size() / 3 + 4);
  if (add_special_tokens) ids = parts_->post.prefix;
  std::vector<Segment> segments = parts_->raw_matcher.empty()
                                      ? std::vector<Segment>{{0, input.size(), -1}}
                                      : parts_->raw_matcher.Split(input);
  for (const Segment& seg : segments) {
    if (seg.token >= 0) {
      ids.push_back(seg.token);
      continue;
    }
    const std::string_view raw = input.substr(seg.begin, seg.end - seg.begin);
    std::string normalized;
    std::string_view text = raw;
    if (!parts_->normalizer.empty()) {
      normalized = parts_->normalizer.Apply(raw);
      text = normalized;
    }
    const bool at_origin = seg.begin == 0;
    if (parts_->normalized_matcher.empty()) {
      EncodeSegment(text, at_origin, &ids);
      continue;
    }
    for (const Segment& sub : parts_->normalized_matcher.Split(text)) {
      if (sub.token >= 0) {
        ids.push_back(sub.token);
      } else {
        EncodeSegment(text.substr(sub.begin, sub.end - sub.begin), at_origin && sub.begin == 0,
                      &ids);
      }
    }
  }
  if (add_special_tokens)
    ids.insert(ids.end(), parts_->post.suffix.begin(), parts_->post.suffix.end());
  return ids;
}

void Tokenizer::PushId(TokenId id, bool skip_special_tokens, DecodeStream* stream) const {
  if (id < 0 || static_cast<size_t>(id) >= parts_->id_to_token.size()) return;
  if (skip_special_tokens && parts_->is_special[id]) return;
  // Gaps in a vocabulary (ids no token has) are skipped like unknown ids.
  if (parts_->id_to_token[id].empty() && !parts_->is_added[id]) return;
  stream->PushToken(parts_->id_to_token[id]);
}

std::string Tokenizer::Decode(absl::Span<const TokenId> ids, bool skip_special_tokens) const {
  DecodeStream stream(parts_->decoder);
  for (TokenId id : ids) PushId(id, skip_special_tokens, &stream);
  stream.Finish();
  return stream.TakeOutput();
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(parts_->id_to_token.size()); }
std::optional<TokenId> Tokenizer::bos_id() const { return parts_->bos_id; }
std::optional<TokenId> Tokenizer::eos_id() const { return parts_->eos_id; }

std::optional<TokenId> Tokenizer::TokenToId(std::string_view token) const {
  auto it = parts_->added_to_id.find(Sv(token));
  if (it != parts_->added_to_id.end()) return it->second;
  return parts_->model.TokenToId(token);
}

std::string Tokenizer::IdToToken(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= parts_->id_to_token.size()) return "";
  return parts_->id_to_token[id];
}

bool Tokenizer::IsSpecial(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < parts_->is_special.size() && parts_->is_special[id];
}

const std::string& Tokenizer::chat_template() const { return parts_->chat_template; }
std::string Tokenizer::bos_token() const { return bos_id() ? IdToToken(*bos_id()) : ""; }
std::string Tokenizer::eos_token() const { return eos_id() ? IdToToken(*eos_id()) : ""; }

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(tok),
      skip_special_tokens_(skip_special_tokens),
      stream_(std::make_unique<DecodeStream>(tok.parts_->decoder)) {}

IncrementalDetokenizer::~IncrementalDetokenizer() = default;

std::string IncrementalDetokenizer::Push(TokenId id) {
  tok_.PushId(id, skip_special_tokens_, stream_.get());
  return stream_->TakeOutput();
}

std::string IncrementalDetokenizer::Flush() {
  stream_->Finish();
  std::string out = stream_->TakeOutput();
  // The stream may be pushed to again after a flush: it then decodes a new sequence.
  return out;
}

}  // namespace lil
