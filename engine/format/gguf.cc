// File: engine/format/gguf.cc
// GGUF parser. Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
// n_kv x (string key, u32 type, value), n_tensors x (string name, u32 n_dims, u64 ne[n_dims],
// u32 ggml_type, u64 offset), padding to general.alignment, tensor data.
#include "engine/format/gguf.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/format/string_view_compat.h"

namespace lil {
namespace {

constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;         // nested arrays deeper than this are rejected

// ggml_type numbers (ggml.h) -> DType; nullopt for types we do not decode.
std::optional<DType> DTypeFromGgml(uint32_t t) {
  switch (t) {
    case 0: return DType::kF32;
    case 1: return DType::kF16;
    case 2: return DType::kQ4_0;
    case 3: return DType::kQ4_1;
    case 6: return DType::kQ5_0;
    case 7: return DType::kQ5_1;
    case 8: return DType::kQ8_0;
    case 12: return DType::kQ4_K;
    case 13: return DType::kQ5_K;
    case 14: return DType::kQ6_K;
    case 30: return DType::kBF16;
    default: return std::nullopt;
  }
}

std::string GgmlTypeName(uint32_t t) {
  static const char* kNames[] = {"F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1",
                                 "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
                                 "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
                                 "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
                                 "BF16"};
  if (t < sizeof(kNames) / sizeof(kNames[0])) return absl::StrCat(kNames[t], " (", t, ")");
  return absl::StrCat("type ", t);
}

}  // namespace

// Bounds-checked cursor over the mapped file; every read fails cleanly at the end.
class GgufParser {
 public:
  GgufParser(GgufFile* f) : f_(f), p_(f->file_->data()), size_(f->file_->size()) {}

  absl::Status Parse() {
    if (size_ < 4 || std::memcmp(p_, "GGUF", 4) != 0) {
      return Err(absl::StatusCode::kInvalidArgument, "bad magic (not a GGUF file)");
    }
    pos_ = 4;
    LIL_ASSIGN_OR_RETURN(f_->version_, ReadU32("version"));
    if (f_->version_ != 2 && f_->version_ != 3) {
      return Err(absl::StatusCode::kUnimplemented,
                 absl::StrCat("GGUF version ", f_->version_, " is not supported (2 and 3 are)"));
    }
    LIL_ASSIGN_OR_RETURN(uint64_t n_tensors, ReadU64("tensor count"));
    LIL_ASSIGN_OR_RETURN(uint64_t n_kv, ReadU64("metadata count"));
    // Each KV needs >= 12 bytes (key length + type), each tensor info >= 24.
    if (n_kv > Remaining() / 12) return Corrupt(absl::StrCat("metadata count ", n_kv, " exceeds the file"));
    if (n_tensors > Remaining() / 24) return Corrupt(absl::StrCat("tensor count ", n_tensors, " exceeds the file"));
    for (uint64_t i = 0; i < n_kv; ++i) LIL_RETURN_IF_ERROR(ParseKv(i));
    LIL_RETURN_IF_ERROR(ReadAlignment());
    std::vector<uint64_t> offsets;
    for (uint64_t i = 0; i < n_tensors; ++i) LIL_RETURN_IF_ERROR(ParseTensorInfo(i, &offsets));
    return PlaceTensors(offsets);
  }

 private:
  uint64_t Remaining() const { return size_ - pos_; }

  absl::Status Err(absl::StatusCode code, absl::string_view msg) const {
    return absl::Status(code, absl::StrCat(f_->path(), ": ", msg));
  }
  absl::Status Corrupt(absl::string_view msg) const { return Err(absl::StatusCode::kDataLoss, msg); }
  absl::Status Truncated(absl::string_view what) const {
    return Corrupt(absl::StrCat("truncated at byte ", pos_, " reading ", what, " (file is ", size_,
                                " bytes)"));
  }

  template <typename T>
  absl::StatusOr<T> Read(absl::string_view what) {
    if (Remaining() < sizeof(T)) return Truncated(what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  absl::StatusOr<uint32_t> ReadU32(absl::string_view what) { return Read<uint32_t>(what); }
  absl::StatusOr<uint64_t> ReadU64(absl::string_view what) { return Read<uint64_t>(what); }

  absl::StatusOr<std::string> ReadString(absl::string_view what) {
    LIL_ASSIGN_OR_RETURN(uint64_t len, ReadU64(what));
    if (len > Remaining()) {
      return Corrupt(absl::StrCat("string length ", len, " of ", what, " at byte ", pos_ - 8,
                                  " runs past the end of the file (", size_, " bytes)"));
    }
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }

  absl::Status ParseKv(uint64_t i) {
    LIL_ASSIGN_OR_RETURN(std::string key, ReadString(absl::StrCat("key of metadata entry ", i)));
    LIL_ASSIGN_OR_RETURN(uint32_t type, ReadU32(absl::StrCat("type of ", key)));
    GgufValue v;
    LIL_RETURN_IF_ERROR(ReadValue(key, type, 0, &v));
    if (f_->values_.contains(key)) return Corrupt(absl::StrCat("metadata key ", key, " appears twice"));
    f_->keys_.push_back(key);
    f_->values_.emplace(std::move(key), std::move(v));
    return absl::OkStatus();
  }

  // Minimum encoded size of one value of `type`, for bounding array counts.
  static uint64_t MinSize(uint32_t type) {
    switch (static_cast<GgufType>(type)) {
      case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
      case GgufType::kU16: case GgufType::kI16: return 2;
      case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
      case GgufType::kArray: return 12;
      default: return 8;  // u64, i64, f64, string length
    }
  }

  absl::Status ReadScalar(const std::string& key, GgufType t, GgufValue* v) {
    v->type = t;
    switch (t) {
#define LIL_GGUF_INT(ENUM, CTYPE) \
  case GgufType::ENUM: { LIL_ASSIGN_OR_RETURN(CTYPE x, Read<CTYPE>(key)); v->int_value = x; return absl::OkStatus(); }
      LIL_GGUF_INT(kU8, uint8_t)
      LIL_GGUF_INT(kI8, int8_t)
      LIL_GGUF_INT(kU16, uint16_t)
      LIL_GGUF_INT(kI16, int16_t)
      LIL_GGUF_INT(kU32, uint32_t)
      LIL_GGUF_INT(kI32, int32_t)
      LIL_GGUF_INT(kI64, int64_t)
#undef LIL_GGUF_INT
      case GgufType::kU64: {
        LIL_ASSIGN_OR_RETURN(uint64_t x, ReadU64(key));
        v->u64_value = x;
        v->int_value = static_cast<int64_t>(x);
        return absl::OkStatus();
      }
      case GgufType::kBool: {
        LIL_ASSIGN_OR_RETURN(uint8_t x, Read<uint8_t>(key));
        if (x > 1) return Corrupt(absl::StrCat("metadata ", key, ": bool value ", int(x)));
        v->int_value = x;
        return absl::OkStatus();
      }
      case GgufType::kF32: {
        LIL_ASSIGN_OR_RETURN(float x, Read<float>(key));
        v->float_value = x;
        return absl::OkStatus();
      }
      case GgufType::kF64: {
        LIL_ASSIGN_OR_RETURN(v->float_value, Read<double>(key));
        return absl::OkStatus();
      }
      case GgufType::kString: {
        LIL_ASSIGN_OR_RETURN(v->string_value, ReadString(key));
        return absl::OkStatus();
      }
      default: return Corrupt(absl::StrCat("metadata ", key, ": unknown value type ", uint32_t(t)));
    }
  }

  absl::Status ReadValue(const std::string& key, uint32_t type, int depth, GgufValue* v) {
    if (type > static_cast<uint32_t>(GgufType::kF64)) {
      return Corrupt(absl::StrCat("metadata ", key, ": unknown value type ", type));
    }
    if (static_cast<GgufType>(type) != GgufType::kArray) {
      return ReadScalar(key, static_cast<GgufType>(type), v);
    }
    if (depth >= kMaxArrayDepth) return Corrupt(absl::StrCat("metadata ", key, ": arrays nested too deep"));
    LIL_ASSIGN_OR_RETURN(uint32_t elem, ReadU32(key));
    LIL_ASSIGN_OR_RETURN(uint64_t n, ReadU64(key));
    if (elem > static_cast<uint32_t>(GgufType::kF64)) {
      return Corrupt(absl::StrCat("metadata ", key, ": unknown array element type ", elem));
    }
    if (n > Remaining() / MinSize(elem)) {
      return Corrupt(absl::StrCat("metadata ", key, ": array count ", n, " runs past the end of the file"));
    }
    v->type = GgufType::kArray;
    v->array_type = static_cast<GgufType>(elem);
    for (uint64_t i = 0; i < n; ++i) {
      GgufValue e;
      LIL_RETURN_IF_ERROR(ReadValue(key, elem, depth + 1, &e));
      switch (v->array_type) {
        case GgufType::kString: v->strings.push_back(std::move(e.string_value)); break;
        case GgufType::kF32: case GgufType::kF64: v->floats.push_back(e.float_value); break;
        case GgufType::kArray: v->arrays.push_back(std::move(e)); break;
        default: v->ints.push_back(e.int_value); break;
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadAlignment() {
    auto it = f_->values_.find("general.alignment");
    if (it == f_->values_.end()) return absl::OkStatus();
    const GgufValue& v = it->second;
    const bool is_int = v.type != GgufType::kArray && v.type != GgufType::kString &&
                        v.type != GgufType::kF32 && v.type != GgufType::kF64 && v.type != GgufType::kBool;
    if (!is_int || v.int_value <= 0 || (v.int_value & (v.int_value - 1)) != 0 || v.int_value > (1 << 20)) {
      return Corrupt(absl::StrCat("general.alignment must be a power of two integer, got ",
                                  v.TypeString(), " ", v.int_value));
    }
    f_->alignment_ = static_cast<uint64_t>(v.int_value);
    return absl::OkStatus();
  }

  absl::Status ParseTensorInfo(uint64_t i, std::vector<uint64_t>* offsets) {
    LIL_ASSIGN_OR_RETURN(std::string name, ReadString(absl::StrCat("name of tensor ", i)));
    LIL_ASSIGN_OR_RETURN(uint32_t n_dims, ReadU32(absl::StrCat("tensor ", name)));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return Corrupt(absl::StrCat("tensor ", name, ": ", n_dims, " dimensions (1..4 allowed)"));
    }
    TensorView t;
    t.name = name;
    t.shape.resize(n_dims);
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      LIL_ASSIGN_OR_RETURN(uint64_t ne, ReadU64(absl::StrCat("tensor ", name)));
      if (ne > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, static_cast<int64_t>(ne), &numel)) {
        return Corrupt(absl::StrCat("tensor ", name, ": dimension ", d, " = ", ne, " overflows"));
      }
      t.shape[n_dims - 1 - d] = static_cast<int64_t>(ne);  // ne[0] is innermost
    }
    LIL_ASSIGN_OR_RETURN(uint32_t ggml_type, ReadU32(absl::StrCat("tensor ", name)));
    LIL_ASSIGN_OR_RETURN(uint64_t offset, ReadU64(absl::StrCat("tensor ", name)));
    auto dtype = DTypeFromGgml(ggml_type);
    if (!dtype.has_value()) {
      return Err(absl::StatusCode::kUnimplemented,
                 absl::StrCat("tensor ", name, ": tensor type ", GgmlTypeName(ggml_type),
                              " is not supported"));
    }
    t.dtype = *dtype;
    const int64_t row = t.shape.back();
    if (row % DTypeBlockElements(t.dtype) != 0) {
      return Corrupt(absl::StrCat("tensor ", name, ": row length ", row, " is not a multiple of the ",
                                  AsAbsl(DTypeName(t.dtype)), " block size ", DTypeBlockElements(t.dtype)));
    }
    auto nbytes = DTypeStorageBytes(t.dtype, numel);
    if (!nbytes.has_value()) return Corrupt(absl::StrCat("tensor ", name, ": size overflows"));
    t.nbytes = *nbytes;
    if (offset % f_->alignment_ != 0) {
      return Corrupt(absl::StrCat("tensor ", name, ": offset ", offset, " is not a multiple of alignment ",
                                  f_->alignment_));
    }
    if (f_->tensor_index_.contains(name)) return Corrupt(absl::StrCat("tensor ", name, " appears twice"));
    f_->tensor_index_.emplace(name, f_->tensors_.size());
    f_->tensors_.push_back(std::move(t));
    offsets->push_back(offset);
    return absl::OkStatus();
  }

  // Points each tensor into the data section after checking range and overlap.
  absl::Status PlaceTensors(const std::vector<uint64_t>& offsets) {
    const uint64_t a = f_->alignment_;
    const uint64_t data_offset = (pos_ + a - 1) / a * a;
    if (!f_->tensors_.empty() && data_offset > size_) {
      return Truncated("padding before the tensor data");
    }
    f_->data_offset_ = data_offset;
    const uint64_t data_size = size_ > data_offset ? size_ - data_offset : 0;
    std::vector<size_t> order(f_->tensors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return offsets[x] < offsets[y]; });
    uint64_t prev_end = 0;
    std::string prev_name;
    for (size_t i : order) {
      TensorView& t = f_->tensors_[i];
      if (offsets[i] > data_size || t.nbytes > data_size - offsets[i]) {
        return Corrupt(absl::StrCat("tensor ", t.name, ": data [", offsets[i], ", +", t.nbytes,
                                    ") runs past the end of the data section (", data_size, " bytes)"));
      }
      if (offsets[i] < prev_end) {
        return Corrupt(absl::StrCat("tensors ", prev_name, " and ", t.name, " overlap"));
      }
      prev_end = offsets[i] + t.nbytes;
      prev_name = t.name;
      t.data = p_ + data_offset + offsets[i];
    }
    return absl::OkStatus();
  }

  GgufFile* f_;
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  LIL_ASSIGN_OR_RETURN(f->file_, MappedFile::Open(path));
  GgufParser parser(f.get());
  LIL_RETURN_IF_ERROR(parser.Parse());
  return f;
}

const TensorView* GgufFile::Find(std::string_view name) const {
  auto it = tensor_index_.find(AsAbsl(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace lil
