// File: tests/engine/format/gguf_test.cc
// GgufFile on files built byte by byte here (so each field can be corrupted on purpose) and
// on the real SmolLM2 file: typed getters, tokenizer spec, and corrupt input (truncations,
// bad magic/version, absurd counts, long strings, unknown types, bad offsets).
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/format/dequant.h"
#include "engine/format/gguf.h"
#include "engine/format/gguf_tokenizer.h"
#include "tests/testing/paths.h"

namespace lil {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Little-endian GGUF byte builder.
struct Bytes {
  std::string s;
  uint64_t keys = 0;  // number of Key() calls, for the header's metadata count
  template <typename T>
  Bytes& Put(T v) { s.append(reinterpret_cast<const char*>(&v), sizeof(T)); return *this; }
  Bytes& Str(const std::string& v) { Put<uint64_t>(v.size()); s += v; return *this; }
  Bytes& Key(const std::string& k, uint32_t type) { ++keys; Str(k); return Put<uint32_t>(type); }
  Bytes& Pad(size_t a) { s.append((a - s.size() % a) % a, '\0'); return *this; }
};

struct TensorDesc {
  std::string name;
  std::vector<uint64_t> ne;  // GGUF order (innermost first)
  uint32_t type;
  uint64_t offset;
};

// Header + KVs (already encoded) + tensor infos + aligned data of `data_bytes`.
std::string BuildGguf(uint32_t version, uint64_t n_kv, const std::string& kvs,
                      const std::vector<TensorDesc>& tensors, size_t data_bytes, size_t align = 32) {
  Bytes b;
  b.s = "GGUF";
  b.Put<uint32_t>(version).Put<uint64_t>(tensors.size()).Put<uint64_t>(n_kv);
  b.s += kvs;
  for (const auto& t : tensors) {
    b.Str(t.name).Put<uint32_t>(t.ne.size());
    for (uint64_t d : t.ne) b.Put<uint64_t>(d);
    b.Put<uint32_t>(t.type).Put<uint64_t>(t.offset);
  }
  b.Pad(align);
  for (size_t i = 0; i < data_bytes; ++i) b.s.push_back(static_cast<char>(i * 7));
  return b.s;
}

// A valid small file: metadata of several kinds, a tokenizer, and three tensors.
std::string ValidFile(uint32_t version = 3) {
  Bytes kv;
  kv.Key("general.architecture", 8).Str("llama");
  kv.Key("llama.block_count", 4).Put<uint32_t>(2);
  kv.Key("llama.rope.freq_base", 6).Put<float>(10000.f);
  kv.Key("t.i16", 3).Put<int16_t>(-7);
  kv.Key("t.u64big", 10).Put<uint64_t>(~0ull);
  kv.Key("t.f64", 12).Put<double>(0.25);
  kv.Key("t.nested", 9).Put<uint32_t>(9).Put<uint64_t>(2);
  kv.Put<uint32_t>(5).Put<uint64_t>(1).Put<int32_t>(4);
  kv.Put<uint32_t>(5).Put<uint64_t>(2).Put<int32_t>(5).Put<int32_t>(6);
  kv.Key("tokenizer.ggml.model", 8).Str("gpt2");
  kv.Key("tokenizer.ggml.tokens", 9).Put<uint32_t>(8).Put<uint64_t>(3).Str("a").Str("b").Str("ab");
  kv.Key("tokenizer.ggml.scores", 9).Put<uint32_t>(6).Put<uint64_t>(3).Put<float>(0).Put<float>(-1).Put<float>(-2);
  kv.Key("tokenizer.ggml.token_type", 9).Put<uint32_t>(5).Put<uint64_t>(3).Put<int32_t>(1).Put<int32_t>(1).Put<int32_t>(3);
  kv.Key("tokenizer.ggml.merges", 9).Put<uint32_t>(8).Put<uint64_t>(1).Str("a b");
  kv.Key("tokenizer.ggml.eos_token_id", 4).Put<uint32_t>(2);
  kv.Key("tokenizer.ggml.add_bos_token", 7).Put<uint8_t>(0);
  kv.Key("general.alignment", 4).Put<uint32_t>(64);
  // f32 [4, 2] (32 B at 0), q8_0 [32] (34 B at 64), f16 [3] (6 B at 128)
  std::vector<TensorDesc> t = {{"a.weight", {2, 4}, 0, 0}, {"q.weight", {32}, 8, 64}, {"h.weight", {3}, 1, 128}};
  return BuildGguf(version, kv.keys, kv.s, t, 134, 64);
}

class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() / ("lil_gguf_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".gguf")).string();
  }
  void TearDown() override { fs::remove(path_); }
  absl::StatusOr<std::unique_ptr<GgufFile>> OpenBytes(const std::string& bytes) {
    std::ofstream(path_, std::ios::binary).write(bytes.data(), bytes.size());
    return GgufFile::Open(path_);
  }
  std::string path_;
};

TEST_F(GgufTest, ParsesValidFile) {
  for (uint32_t version : {2u, 3u}) {
    auto f = OpenBytes(ValidFile(version));
    ASSERT_TRUE(f.ok()) << f.status();
    const GgufFile& g = **f;
    EXPECT_EQ(g.version(), version);
    EXPECT_EQ(g.alignment(), 64u);
    EXPECT_EQ(*g.GetString("general.architecture"), "llama");
    EXPECT_EQ(*g.GetInt("llama.block_count"), 2);
    EXPECT_EQ(*g.GetInt("t.i16"), -7);
    EXPECT_EQ(*g.GetFloat("llama.rope.freq_base"), 10000.0);
    EXPECT_EQ(*g.GetFloat("t.f64"), 0.25);
    EXPECT_FALSE(*g.GetBool("tokenizer.ggml.add_bos_token"));
    EXPECT_EQ(g.FindValue("t.nested")->TypeString(), "array[array[i32]]");
    EXPECT_EQ(g.FindValue("t.nested")->arrays[1].ints, (std::vector<int64_t>{5, 6}));
    EXPECT_EQ(g.keys().size(), 15u);
    ASSERT_EQ(g.tensors().size(), 3u);
    const TensorView* a = g.Find("a.weight");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->shape, (std::vector<int64_t>{4, 2}));  // PyTorch order: ne reversed
    EXPECT_EQ(a->nbytes, 32u);
    EXPECT_EQ(g.Find("q.weight")->nbytes, 34u);
    EXPECT_EQ(g.Find("h.weight")->data - a->data, 128);
    EXPECT_EQ(g.Find("nope"), nullptr);
  }
}

TEST_F(GgufTest, GetterErrorsNameKeyAndType) {
  auto f = OpenBytes(ValidFile());
  ASSERT_TRUE(f.ok());
  const GgufFile& g = **f;
  auto s = g.GetInt("general.architecture").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("general.architecture is string, expected an integer"));
  EXPECT_EQ(g.GetString("missing.key").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(g.GetString("missing.key").status().message(), HasSubstr("missing.key"));
  EXPECT_THAT(g.GetFloat("llama.block_count").status().message(), HasSubstr("is u32"));
  EXPECT_THAT(g.GetStringArray("tokenizer.ggml.scores").status().message(), HasSubstr("array[f32]"));
  EXPECT_EQ(g.GetInt("t.u64big").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(*g.GetFloatArray("tokenizer.ggml.scores"), (std::vector<float>{0, -1, -2}));
  EXPECT_EQ(*g.GetIntArray("tokenizer.ggml.token_type"), (std::vector<int64_t>{1, 1, 3}));
}

TEST_F(GgufTest, TokenizerSpec) {
  auto f = OpenBytes(ValidFile());
  ASSERT_TRUE(f.ok());
  auto spec = ReadGgufTokenizerSpec(**f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->model, "gpt2");
  EXPECT_EQ(spec->tokens, (std::vector<std::string>{"a", "b", "ab"}));
  EXPECT_EQ(spec->merges, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(spec->token_types, (std::vector<int32_t>{1, 1, 3}));
  EXPECT_EQ(spec->eos_id, 2);
  EXPECT_FALSE(spec->bos_id.has_value());
  EXPECT_FALSE(spec->add_bos);
}

TEST_F(GgufTest, TokenizerSpecRejectsOutOfRangeIds) {
  Bytes kv;
  kv.Key("tokenizer.ggml.model", 8).Str("gpt2");
  kv.Key("tokenizer.ggml.tokens", 9).Put<uint32_t>(8).Put<uint64_t>(1).Str("a");
  kv.Key("tokenizer.ggml.bos_token_id", 4).Put<uint32_t>(5);
  auto f = OpenBytes(BuildGguf(3, 3, kv.s, {}, 0));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_THAT(ReadGgufTokenizerSpec(**f).status().message(),
              HasSubstr("tokenizer.ggml.bos_token_id = 5 is outside the vocabulary of 1 tokens"));
}

TEST_F(GgufTest, EveryTruncationFailsCleanly) {
  const std::string full = ValidFile();
  for (size_t cut = 0; cut < full.size(); ++cut) {
    auto f = OpenBytes(full.substr(0, cut));
    ASSERT_FALSE(f.ok()) << "cut at " << cut;
    EXPECT_THAT(f.status().message(), HasSubstr(path_)) << f.status();
  }
}

TEST_F(GgufTest, BadMagicAndVersion) {
  std::string bad = ValidFile();
  bad[0] = 'X';
  EXPECT_THAT(OpenBytes(bad).status().message(), HasSubstr("bad magic"));
  EXPECT_THAT(OpenBytes("").status().message(), HasSubstr("bad magic"));
  for (uint32_t v : {1u, 4u, 0xFFFFFFFFu}) {
    auto s = OpenBytes(ValidFile(v)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(s.message(), HasSubstr("version"));
  }
}

TEST_F(GgufTest, AbsurdCountsAndLengths) {
  EXPECT_THAT(OpenBytes(BuildGguf(3, 1ull << 60, "", {}, 0)).status().message(), HasSubstr("metadata count"));
  Bytes b;
  b.s = "GGUF";
  b.Put<uint32_t>(3).Put<uint64_t>(~0ull).Put<uint64_t>(0);
  EXPECT_THAT(OpenBytes(b.s).status().message(), HasSubstr("tensor count"));
  Bytes kv;
  kv.Put<uint64_t>(1ull << 62).s += "abc";  // key length past the end
  EXPECT_THAT(OpenBytes(BuildGguf(3, 1, kv.s, {}, 0)).status().message(), HasSubstr("runs past the end"));
  Bytes arr;
  arr.Key("big", 9).Put<uint32_t>(4).Put<uint64_t>(1ull << 61);  // u32 array, huge count
  EXPECT_THAT(OpenBytes(BuildGguf(3, 1, arr.s, {}, 0)).status().message(), HasSubstr("array count"));
  Bytes str;
  str.Key("s", 8).Put<uint64_t>(1000).s += "short";
  EXPECT_THAT(OpenBytes(BuildGguf(3, 1, str.s, {}, 0)).status().message(), HasSubstr("string length 1000"));
  Bytes deep;
  deep.Key("deep", 9);
  for (int i = 0; i < 20; ++i) deep.Put<uint32_t>(9).Put<uint64_t>(1);
  deep.Put<uint32_t>(4).Put<uint64_t>(0);
  EXPECT_THAT(OpenBytes(BuildGguf(3, 1, deep.s, {}, 0)).status().message(), HasSubstr("nested too deep"));
  Bytes dup;
  dup.Key("k", 4).Put<uint32_t>(1).Key("k", 4).Put<uint32_t>(2);
  EXPECT_THAT(OpenBytes(BuildGguf(3, 2, dup.s, {}, 0)).status().message(), HasSubstr("appears twice"));
}

TEST_F(GgufTest, UnknownTypes) {
  Bytes kv;
  kv.Key("weird", 13).Put<uint32_t>(0);
  EXPECT_THAT(OpenBytes(BuildGguf(3, 1, kv.s, {}, 0)).status().message(), HasSubstr("weird: unknown value type 13"));
  auto s = OpenBytes(BuildGguf(3, 0, "", {{"blk.0.ffn_up.weight", {256}, 16, 0}}, 64)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("tensor blk.0.ffn_up.weight: tensor type IQ2_XXS (16) is not supported"));
  EXPECT_THAT(OpenBytes(BuildGguf(3, 0, "", {{"t", {32}, 999, 0}}, 64)).status().message(), HasSubstr("type 999"));
}

TEST_F(GgufTest, BadTensorInfos) {
  auto msg = [&](std::vector<TensorDesc> t, size_t data) { return std::string(OpenBytes(BuildGguf(3, 0, "", t, data)).status().message()); };
  EXPECT_THAT(msg({{"t", {8}, 0, 0}}, 16), HasSubstr("tensor t: data [0, +32) runs past the end"));
  EXPECT_THAT(msg({{"t", {8}, 0, 1ull << 63}}, 64), HasSubstr("runs past the end"));
  EXPECT_THAT(msg({{"t", {8}, 0, 0}, {"u", {8}, 0, 0}}, 64), HasSubstr("overlap"));
  EXPECT_THAT(msg({{"t", {8}, 0, 0}, {"t", {8}, 0, 32}}, 64), HasSubstr("appears twice"));
  EXPECT_THAT(msg({{"t", {8}, 0, 4}}, 64), HasSubstr("not a multiple of alignment"));
  EXPECT_THAT(msg({{"t", {1, 1, 1, 1, 1}, 0, 0}}, 64), HasSubstr("5 dimensions"));
  EXPECT_THAT(msg({{"t", {1ull << 32, 1ull << 32, 4}, 0, 0}}, 64), HasSubstr("overflows"));
  EXPECT_THAT(msg({{"t", {100}, 12, 0}}, 256), HasSubstr("row length 100 is not a multiple of the Q4_K block size 256"));
  Bytes kv;
  kv.Key("general.alignment", 4).Put<uint32_t>(3);
  EXPECT_THAT(OpenBytes(BuildGguf(3, 1, kv.s, {}, 0)).status().message(), HasSubstr("general.alignment"));
}

TEST_F(GgufTest, RandomByteFlipsNeverCrash) {
  const std::string full = ValidFile();
  std::mt19937 rng(11);
  int opened = 0;
  for (int iter = 0; iter < 800; ++iter) {
    std::string bad = full;
    for (int k = 0; k <= iter % 3; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
    auto f = OpenBytes(bad);
    if (!f.ok()) continue;
    ++opened;
    for (const TensorView& t : (*f)->tensors()) {
      std::vector<float> out(t.numel());
      ASSERT_TRUE(ConvertToF32(t, out.data()).ok()) << t.name;
    }
    (void)ReadGgufTokenizerSpec(**f);
  }
  EXPECT_GT(opened, 0);  // flips in the data section leave a valid file
}

TEST(GgufRealModel, SmolLM2) {
  const std::string path = testing::DefaultModelPath();
  if (path.empty()) GTEST_SKIP() << "default model not present";
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*(*f)->GetString("general.architecture"), "llama");
  EXPECT_EQ(*(*f)->GetInt("llama.block_count"), 30);
  const TensorView* emb = (*f)->Find("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{49152, 576}));
  EXPECT_EQ(emb->dtype, DType::kQ8_0);
  EXPECT_EQ((*f)->Find("blk.0.attn_k.weight")->shape, (std::vector<int64_t>{192, 576}));
  auto spec = ReadGgufTokenizerSpec(**f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->model, "gpt2");
  EXPECT_EQ(spec->pre, "smollm");
  EXPECT_EQ(spec->tokens.size(), 49152u);
  EXPECT_EQ(spec->merges.size(), 48900u);
  EXPECT_EQ(spec->tokens[*spec->eos_id], "<|im_end|>");
  EXPECT_THAT(spec->chat_template, HasSubstr("<|im_start|>"));
}

}  // namespace
}  // namespace lil
