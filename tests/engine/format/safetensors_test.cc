// File: tests/engine/format/safetensors_test.cc
// SafetensorsModel and SafetensorsWriter: round trips (single and sharded) and corrupt
// input (truncations, bad header length, bad JSON, bad offsets/dtypes/shapes, missing
// shards), each of which must give an error naming the file (and tensor), never a crash.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/format/dequant.h"
#include "engine/format/safetensors.h"
#include "engine/format/safetensors_writer.h"

namespace lil {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lil_st_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  static void WriteBytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
  }
  static std::string ReadBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // A raw safetensors file from a header string and a data section of `data_bytes` zeros.
  static std::string RawFile(const std::string& header, size_t data_bytes) {
    std::string out(8, '\0');
    uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    return out + header + std::string(data_bytes, '\0');
  }
  absl::Status OpenRaw(const std::string& header, size_t data_bytes) {
    WriteBytes(Path("model.safetensors"), RawFile(header, data_bytes));
    return SafetensorsModel::OpenFile(Path("model.safetensors")).status();
  }

  // Writes tensors a [2,3] f32, b [4] bf16, c [3,2,2] f16 with values i*0.5 (as stored).
  std::vector<TensorSpec> Specs() const {
    return {{"a", DType::kF32, {2, 3}}, {"b", DType::kBF16, {4}}, {"c", DType::kF16, {3, 2, 2}}};
  }
  static std::vector<uint8_t> Payload(const TensorSpec& t) {
    std::vector<uint8_t> out(t.nbytes());
    const size_t n = t.nbytes() / (t.dtype == DType::kF32 ? 4 : 2);
    for (size_t i = 0; i < n; ++i) {
      const float v = 0.5f * static_cast<float>(i) - 1.0f;
      if (t.dtype == DType::kF32) std::memcpy(&out[4 * i], &v, 4);
      uint16_t h = t.dtype == DType::kBF16 ? F32ToBF16(v) : F32ToF16(v);
      if (t.dtype != DType::kF32) std::memcpy(&out[2 * i], &h, 2);
    }
    return out;
  }
  void WriteModel(const std::string& path, const std::vector<TensorSpec>& specs) {
    auto w = SafetensorsWriter::Create(path, specs, {{"format", "pt"}});
    ASSERT_TRUE(w.ok()) << w.status();
    for (size_t i = 0; i < specs.size(); ++i) {
      auto bytes = Payload(specs[i]);
      ASSERT_TRUE((*w)->Write(i, 0, bytes.data(), bytes.size()).ok());
    }
    ASSERT_TRUE((*w)->Close().ok());
  }
  void ExpectModelMatches(const SafetensorsModel& m, const std::vector<TensorSpec>& specs) {
    ASSERT_EQ(m.tensors().size(), specs.size());
    for (const TensorSpec& s : specs) {
      const TensorView* t = m.Find(s.name);
      ASSERT_NE(t, nullptr) << s.name;
      EXPECT_EQ(t->dtype, s.dtype);
      EXPECT_EQ(t->shape, s.shape);
      auto want = Payload(s);
      ASSERT_EQ(t->nbytes, want.size());
      EXPECT_EQ(std::memcmp(t->data, want.data(), want.size()), 0) << s.name;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 8, 0u) << "tensor data not 8-byte aligned";
      std::vector<float> f(t->numel());
      ASSERT_TRUE(ConvertToF32(*t, f.data()).ok());
      EXPECT_EQ(f[1], -0.5f);
    }
  }

  fs::path dir_;
};

TEST_F(SafetensorsTest, WriteThenReadSingleFile) {
  WriteModel(Path("model.safetensors"), Specs());
  auto m = SafetensorsModel::Open(dir_.string());
  ASSERT_TRUE(m.ok()) << m.status();
  ExpectModelMatches(**m, Specs());
  EXPECT_EQ((*m)->Find("missing"), nullptr);
}

TEST_F(SafetensorsTest, ShardedSetReadsAllShards) {
  auto shards = PlanShards(Specs(), 30);  // a: 24 bytes, b: 8, c: 24 -> [a], [b], [c]
  ASSERT_EQ(shards.size(), 3u);
  for (size_t i = 0; i < shards.size(); ++i) WriteModel(Path(ShardFileName(i, shards.size())), shards[i]);
  ASSERT_TRUE(WriteSafetensorsIndex(dir_.string(), shards).ok());
  auto m = SafetensorsModel::Open(dir_.string());
  ASSERT_TRUE(m.ok()) << m.status();
  ExpectModelMatches(**m, Specs());
  EXPECT_EQ((*m)->file_paths().size(), 3u);
  EXPECT_EQ(PlanShards(Specs(), 1000).size(), 1u);
  EXPECT_EQ(ShardFileName(1, 3), "model-00002-of-00003.safetensors");
}

TEST_F(SafetensorsTest, MissingShardIsNamed) {
  auto shards = PlanShards(Specs(), 30);
  for (size_t i = 0; i < 2; ++i) WriteModel(Path(ShardFileName(i, shards.size())), shards[i]);
  ASSERT_TRUE(WriteSafetensorsIndex(dir_.string(), shards).ok());
  auto m = SafetensorsModel::Open(dir_.string());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(m.status().message(), HasSubstr("model-00003-of-00003.safetensors"));
}

TEST_F(SafetensorsTest, IndexNamingTensorAbsentFromShard) {
  WriteModel(Path("s.safetensors"), Specs());
  WriteBytes(Path("model.safetensors.index.json"),
             R"({"weight_map": {"a": "s.safetensors", "zzz": "s.safetensors"}})");
  auto m = SafetensorsModel::Open(dir_.string());
  EXPECT_THAT(m.status().message(), HasSubstr("zzz"));
  WriteBytes(Path("model.safetensors.index.json"), R"({"weight_map": {"a": "../etc/passwd"}})");
  EXPECT_FALSE(SafetensorsModel::Open(dir_.string()).ok());
  WriteBytes(Path("model.safetensors.index.json"), "{not json");
  EXPECT_THAT(SafetensorsModel::Open(dir_.string()).status().message(), HasSubstr("not valid JSON"));
}

TEST_F(SafetensorsTest, MissingFilesAreClearErrors) {
  auto m = SafetensorsModel::Open(Path("nope"));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  m = SafetensorsModel::Open(dir_.string());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(m.status().message(), HasSubstr("model.safetensors"));
}

TEST_F(SafetensorsTest, EveryTruncationFailsCleanly) {
  WriteModel(Path("full.safetensors"), Specs());
  const std::string full = ReadBytes(Path("full.safetensors"));
  for (size_t cut = 0; cut < full.size(); ++cut) {
    WriteBytes(Path("cut.safetensors"), full.substr(0, cut));
    auto m = SafetensorsModel::OpenFile(Path("cut.safetensors"));
    ASSERT_FALSE(m.ok()) << "cut at " << cut << " of " << full.size();
    EXPECT_THAT(m.status().message(), HasSubstr("cut.safetensors")) << m.status();
  }
}

TEST_F(SafetensorsTest, BadHeaders) {
  const std::string f32_2 = R"("dtype":"F32","shape":[2])";
  // Header length beyond the file.
  std::string raw = RawFile("{}", 0);
  uint64_t huge = 1ull << 40;
  std::memcpy(raw.data(), &huge, 8);
  WriteBytes(Path("model.safetensors"), raw);
  auto s = SafetensorsModel::OpenFile(Path("model.safetensors")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("header length"));
  EXPECT_THAT(OpenRaw("{\"a\": ", 0).message(), HasSubstr("not a JSON object"));
  EXPECT_THAT(OpenRaw("[1, 2]", 0).message(), HasSubstr("not a JSON object"));
  // Offsets out of range, reversed, wrong size, overlapping.
  s = OpenRaw("{\"w\": {" + f32_2 + R"(,"data_offsets":[0,8]}})", 4);
  EXPECT_THAT(s.message(), HasSubstr("tensor w: data_offsets [0, 8] out of range"));
  EXPECT_THAT(OpenRaw("{\"w\": {" + f32_2 + R"(,"data_offsets":[8,0]}})", 16).message(), HasSubstr("out of range"));
  EXPECT_THAT(OpenRaw("{\"w\": {" + f32_2 + R"(,"data_offsets":[0,12]}})", 16).message(), HasSubstr("needs 8 bytes"));
  s = OpenRaw("{\"w\": {" + f32_2 + R"(,"data_offsets":[0,8]}, "v": {)" + f32_2 + R"(,"data_offsets":[4,12]}})", 16);
  EXPECT_THAT(s.message(), HasSubstr("overlap"));
  EXPECT_THAT(OpenRaw(R"({"w": {"dtype":"F32","shape":[2],"data_offsets":[-1,7]}})", 16).message(), HasSubstr("data_offsets"));
  // Dtypes and shapes.
  s = OpenRaw(R"({"w": {"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 16);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("tensor w: dtype \"I64\""));
  EXPECT_THAT(OpenRaw(R"({"w": {"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8).message(), HasSubstr("dtype"));
  EXPECT_THAT(OpenRaw(R"({"w": {"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8).message(), HasSubstr("shape"));
  EXPECT_THAT(OpenRaw(R"({"w": {"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8).message(), HasSubstr("shape"));
  s = OpenRaw(R"({"w": {"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}})", 8);
  EXPECT_THAT(s.message(), HasSubstr("overflows"));
  EXPECT_THAT(OpenRaw(R"({"w": {"dtype":"F32","shape":[2]}})", 8).message(), HasSubstr("data_offsets"));
  EXPECT_THAT(OpenRaw(R"({"w": 3})", 8).message(), HasSubstr("tensor w"));
  // __metadata__ is ignored; an empty header is a valid empty model.
  EXPECT_TRUE(OpenRaw(R"({"__metadata__": {"format": "pt"}})", 0).ok());
}

TEST_F(SafetensorsTest, RandomByteFlipsNeverCrash) {
  WriteModel(Path("full.safetensors"), Specs());
  const std::string full = ReadBytes(Path("full.safetensors"));
  std::mt19937 rng(7);
  for (int iter = 0; iter < 600; ++iter) {
    std::string bad = full;
    const int flips = 1 + iter % 4;
    for (int k = 0; k < flips; ++k) bad[rng() % std::min<size_t>(bad.size(), 8 + 200)] = static_cast<char>(rng());
    WriteBytes(Path("bad.safetensors"), bad);
    auto m = SafetensorsModel::OpenFile(Path("bad.safetensors"));
    if (!m.ok()) continue;
    for (const TensorView& t : (*m)->tensors()) {  // whatever was accepted must be readable
      std::vector<float> f(t.numel());
      ASSERT_TRUE(ConvertToF32(t, f.data()).ok());
    }
  }
}

TEST_F(SafetensorsTest, WriterRejectsBadInput) {
  EXPECT_FALSE(SafetensorsWriter::Create(Path("x.safetensors"), {{"q", DType::kQ4_K, {256}}}).ok());
  EXPECT_FALSE(SafetensorsWriter::Create(Path("x.safetensors"), {{"a", DType::kF32, {1}}, {"a", DType::kF32, {1}}}).ok());
  auto w = SafetensorsWriter::Create(Path("x.safetensors"), {{"a", DType::kF32, {2}}});
  ASSERT_TRUE(w.ok());
  float v[3] = {1, 2, 3};
  EXPECT_FALSE((*w)->Write(0, 4, v, 8).ok());  // past the tensor's 8 bytes
  EXPECT_FALSE((*w)->Write(1, 0, v, 4).ok());
  EXPECT_TRUE((*w)->Write(0, 4, v, 4).ok());
  EXPECT_FALSE(SafetensorsWriter::Create(Path("no/such/dir/x.safetensors"), {}).ok());
}

}  // namespace
}  // namespace lil
