// File: engine/format/gguf_metadata.cc
// GgufValue helpers and GgufFile's typed metadata getters. Errors name the key, the type
// asked for and the type found.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/format/gguf.h"
#include "engine/format/string_view_compat.h"

namespace lil {
namespace {

bool IsIntType(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kU16: case GgufType::kI16:
    case GgufType::kU32: case GgufType::kI32: case GgufType::kU64: case GgufType::kI64:
      return true;
    default: return false;
  }
}
bool IsFloatType(GgufType t) { return t == GgufType::kF32 || t == GgufType::kF64; }

}  // namespace

std::string_view GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::kU8: return "u8";
    case GgufType::kI8: return "i8";
    case GgufType::kU16: return "u16";
    case GgufType::kI16: return "i16";
    case GgufType::kU32: return "u32";
    case GgufType::kI32: return "i32";
    case GgufType::kF32: return "f32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kU64: return "u64";
    case GgufType::kI64: return "i64";
    case GgufType::kF64: return "f64";
  }
  return "?";
}

size_t GgufValue::array_size() const {
  if (type != GgufType::kArray) return 0;
  switch (array_type) {
    case GgufType::kString: return strings.size();
    case GgufType::kF32: case GgufType::kF64: return floats.size();
    case GgufType::kArray: return arrays.size();
    default: return ints.size();
  }
}

std::string GgufValue::TypeString() const {
  if (type != GgufType::kArray) return std::string(GgufTypeName(type));
  if (array_type == GgufType::kArray) {
    return absl::StrCat("array[", arrays.empty() ? "array" : arrays[0].TypeString(), "]");
  }
  return absl::StrCat("array[", AsAbsl(GgufTypeName(array_type)), "]");
}

const GgufValue* GgufFile::FindValue(std::string_view key) const {
  auto it = values_.find(AsAbsl(key));
  return it == values_.end() ? nullptr : &it->second;
}

bool GgufFile::Has(std::string_view key) const { return FindValue(key) != nullptr; }

namespace {

// Looks up `key`, checking its type with `ok`; `want` describes the expected type.
template <typename Pred>
absl::StatusOr<const GgufValue*> Lookup(const GgufFile& f, std::string_view key, Pred ok,
                                        std::string_view want) {
  const GgufValue* v = f.FindValue(key);
  if (v == nullptr) {
    return absl::NotFoundError(absl::StrCat(f.path(), ": metadata key ", AsAbsl(key), " is missing"));
  }
  if (!ok(*v)) {
    return InvalidArgument(f.path(), ": metadata key ", AsAbsl(key), " is ", v->TypeString(),
                           ", expected ", AsAbsl(want));
  }
  return v;
}

}  // namespace

absl::StatusOr<std::string> GgufFile::GetString(std::string_view key) const {
  LIL_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*this, key, [](const GgufValue& v) {
    return v.type == GgufType::kString; }, "string"));
  return v->string_value;
}

absl::StatusOr<int64_t> GgufFile::GetInt(std::string_view key) const {
  LIL_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*this, key, [](const GgufValue& v) {
    return IsIntType(v.type); }, "an integer"));
  if (v->is_big_u64()) {
    return absl::OutOfRangeError(absl::StrCat(path(), ": metadata key ", AsAbsl(key), " = ", v->u64_value,
                                              " does not fit in int64"));
  }
  return v->int_value;
}

absl::StatusOr<double> GgufFile::GetFloat(std::string_view key) const {
  LIL_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*this, key, [](const GgufValue& v) {
    return IsFloatType(v.type); }, "f32 or f64"));
  return v->float_value;
}

absl::StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  LIL_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*this, key, [](const GgufValue& v) {
    return v.type == GgufType::kBool; }, "bool"));
  return v->int_value != 0;
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  LIL_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*this, key, [](const GgufValue& v) {
    return v.type == GgufType::kArray && v.array_type == GgufType::kString; }, "array[string]"));
  return v->strings;
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  LIL_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*this, key, [](const GgufValue& v) {
    return v.type == GgufType::kArray && IsIntType(v.array_type); }, "an integer array"));
  return v->ints;
}

absl::StatusOr<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  LIL_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*this, key, [](const GgufValue& v) {
    return v.type == GgufType::kArray && IsFloatType(v.array_type); }, "array[f32] or array[f64]"));
  return std::vector<float>(v->floats.begin(), v->floats.end());
}

}  // namespace lil
