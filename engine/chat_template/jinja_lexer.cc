// File: engine/chat_template/jinja_lexer.cc
// The lexer follows jinja2/lexer.py rule for rule (root / block / variable / comment / raw states)
// so that whitespace comes out byte-identical.
#include "engine/chat_template/jinja_lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>

#include "absl/strings/str_cat.h"
#include "engine/chat_template/jinja_text.h"

namespace lil::jinja {
namespace {

bool StartsWith(std::string_view s, size_t pos, std::string_view prefix) {
  return s.size() >= pos && s.substr(pos, prefix.size()) == prefix;
}

// Length in bytes of the run of Python whitespace starting at pos.
size_t PySpaceRun(std::string_view s, size_t pos) {
  size_t p = pos;
  while (p < s.size()) {
    size_t next = p;
    std::u32string cp = DecodeUtf8(s.substr(p, std::min<size_t>(4, s.size() - p)));
    if (cp.empty() || !IsPySpace(cp[0])) break;
    std::string enc;
    AppendUtf8(cp[0], &enc);
    next += enc.size();
    p = next;
  }
  return p - pos;
}

bool AllPySpace(std::string_view s) {
  if (s.empty()) return false;
  for (char32_t c : DecodeUtf8(s)) {
    if (!IsPySpace(c)) return false;
  }
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string_view raw) {
    // Jinja splits on \r\n, \r and \n, drops one trailing empty line and joins with \n.
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\r') {
        if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
        src_.push_back('\n');
      } else {
        src_.push_back(raw[i]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  absl::StatusOr<std::vector<Token>> Run();

 private:
  Token Make(TokenType type, size_t pos, std::string value = "") const {
    Token t;
    t.type = type;
    t.value = std::move(value);
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), pos);
    size_t line_idx = (it - line_starts_.begin()) - 1;
    t.line = static_cast<int>(line_idx + 1);
    t.column = static_cast<int>(pos - line_starts_[line_idx] + 1);
    return t;
  }
  absl::Status Error(size_t pos, std::string_view msg) const {
    Token t = Make(TokenType::kEof, pos);
    return absl::InvalidArgumentError(absl::StrCat(Where(t.line, t.column), std::string(msg)));
  }
  void EmitText(std::string text, size_t pos, char sign, bool is_variable);
  absl::Status LexComment(size_t open_pos);
  absl::Status LexRaw(size_t open_pos, size_t body_pos);
  absl::Status LexTag(size_t open_pos, bool is_block);
  absl::StatusOr<std::string> DecodeString(size_t pos, std::string_view body) const;
  std::optional<size_t> MatchRawBegin(size_t pos) const;

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> out_;
  size_t pos_ = 0;
  bool line_starting_ = true;
};

void Lexer::EmitText(std::string text, size_t pos, char sign, bool is_variable) {
  if (sign == '-') {
    text = PyStrip(text, std::nullopt, false, true);
  } else if (sign != '+' && !is_variable) {  // lstrip_blocks
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if ((l_pos > 0 || line_starting_) && AllPySpace(std::string_view(text).substr(l_pos))) {
      text.resize(l_pos);
    }
  }
  if (!text.empty()) out_.push_back(Make(TokenType::kText, pos, std::move(text)));
}

std::optional<size_t> Lexer::MatchRawBegin(size_t pos) const {
  // {%(-|+|)\s*raw\s*(-%}\s*|%})
  size_t p = pos + 2;
  if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
  p += PySpaceRun(src_, p);
  if (!StartsWith(src_, p, "raw")) return std::nullopt;
  p += 3;
  p += PySpaceRun(src_, p);
  if (StartsWith(src_, p, "-%}")) return p + 3 + PySpaceRun(src_, p + 3);
  if (StartsWith(src_, p, "%}")) return p + 2;
  return std::nullopt;
}

absl::StatusOr<std::vector<Token>> Lexer::Run() {
  while (pos_ < src_.size()) {
    size_t open = std::string::npos;
    for (size_t p = src_.find('{', pos_); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) {
        open = p;
        break;
      }
    }
    if (open == std::string::npos) {
      out_.push_back(Make(TokenType::kText, pos_, src_.substr(pos_)));
      break;
    }
    char kind = src_[open + 1];
    char sign = (open + 2 < src_.size() && (src_[open + 2] == '-' || src_[open + 2] == '+'))
                    ? src_[open + 2]
                    : 0;
    std::string text = src_.substr(pos_, open - pos_);
    std::optional<size_t> raw_body = kind == '%' ? MatchRawBegin(open) : std::nullopt;
    EmitText(std::move(text), pos_, sign, kind == '{' && !raw_body);
    if (raw_body) {
      absl::Status s = LexRaw(open, *raw_body);
      if (!s.ok()) return s;
    } else if (kind == '#') {
      absl::Status s = LexComment(open);
      if (!s.ok()) return s;
    } else {
      absl::Status s = LexTag(open, kind == '%');
      if (!s.ok()) return s;
    }
  }
  out_.push_back(Make(TokenType::kEof, src_.size()));
  return std::move(out_);
}

absl::Status Lexer::LexComment(size_t open_pos) {
  // (.*?)((?:\+#}|\-#}\s*|#}\n?))
  size_t p = open_pos + 2;
  while (p < src_.size()) {
    if (StartsWith(src_, p, "+#}")) {
      pos_ = p + 3;
      line_starting_ = false;
      return absl::OkStatus();
    }
    if (StartsWith(src_, p, "-#}")) {
      size_t end = p + 3 + PySpaceRun(src_, p + 3);
      pos_ = end;
      line_starting_ = src_[end - 1] == '\n';
      return absl::OkStatus();
    }
    if (StartsWith(src_, p, "#}")) {
      size_t end = p + 2;
      if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
      pos_ = end;
      line_starting_ = src_[end - 1] == '\n';
      return absl::OkStatus();
    }
    ++p;
  }
  return Error(open_pos, "missing end of comment tag '#}'");
}

absl::Status Lexer::LexRaw(size_t open_pos, size_t body_pos) {
  // (.*?)((?:{%(-|+|))\s*endraw\s*(?:+%}|-%}\s*|%}\n?))
  for (size_t p = src_.find("{%", body_pos); p != std::string::npos; p = src_.find("{%", p + 1)) {
    size_t q = p + 2;
    char sign = (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ? src_[q] : 0;
    if (sign) ++q;
    q += PySpaceRun(src_, q);
    if (!StartsWith(src_, q, "endraw")) continue;
    q += 6;
    q += PySpaceRun(src_, q);
    size_t end;
    if (StartsWith(src_, q, "+%}")) {
      end = q + 3;
    } else if (StartsWith(src_, q, "-%}")) {
      end = q + 3 + PySpaceRun(src_, q + 3);
    } else if (StartsWith(src_, q, "%}")) {
      end = q + 2;
      if (end < src_.size() && src_[end] == '\n') ++end;
    } else {
      continue;
    }
    line_starting_ = false;  // the raw begin tag ended the previous match
    EmitText(src_.substr(body_pos, p - body_pos), body_pos, sign, false);
    pos_ = end;
    line_starting_ = src_[end - 1] == '\n';
    return absl::OkStatus();
  }
  return Error(open_pos, "missing end of raw directive ('{% endraw %}')");
}

absl::StatusOr<std::string> Lexer::DecodeString(size_t pos, std::string_view body) const {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out.push_back(c);
      continue;
    }
    char e = body[++i];
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': out.push_back('\\'); break;
      case '\'': out.push_back('\''); break;
      case '"': out.push_back('"'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'v': out.push_back('\v'); break;
      case 'x':
      case 'u':
      case 'U': {
        size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        char32_t cp = 0;
        for (size_t k = 0; k < digits; ++k) {
          int h = i + 1 + k < body.size() ? HexValue(body[i + 1 + k]) : -1;
          if (h < 0) return Error(pos, absl::StrCat("truncated \\", std::string(1, e), " escape in string literal"));
          cp = cp * 16 + h;
        }
        if (cp > 0x10FFFF) return Error(pos, "illegal Unicode character in string literal");
        i += digits;
        AppendUtf8(cp, &out);
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          char32_t cp = e - '0';
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k) {
            cp = cp * 8 + (body[++i] - '0');
          }
          AppendUtf8(cp, &out);
        } else {
          out.push_back('\\');  // Python keeps unknown escapes
          out.push_back(e);
        }
    }
  }
  return out;
}

absl::Status Lexer::LexTag(size_t open_pos, bool is_block) {
  out_.push_back(Make(is_block ? TokenType::kBlockBegin : TokenType::kVarBegin, open_pos));
  size_t p = open_pos + 2;
  if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
  std::vector<char> balance;
  static const char* kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~",
                               "[",  "]",  "(",  ")",  "{",  "}",  ">", "<", "=", ".", ":", "|",
                               ",",  ";"};
  while (true) {
    if (p >= src_.size()) {
      return Error(open_pos, is_block ? "unexpected end of template, expected '%}'"
                                      : "unexpected end of template, expected '}}'");
    }
    if (balance.empty()) {
      size_t end = 0;
      if (is_block) {
        if (StartsWith(src_, p, "+%}")) {
          end = p + 3;
        } else if (StartsWith(src_, p, "-%}")) {
          end = p + 3 + PySpaceRun(src_, p + 3);
        } else if (StartsWith(src_, p, "%}")) {
          end = p + 2;
          if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
        }
      } else if (StartsWith(src_, p, "-}}")) {
        end = p + 3 + PySpaceRun(src_, p + 3);
      } else if (StartsWith(src_, p, "}}")) {
        end = p + 2;
      }
      if (end != 0) {
        out_.push_back(Make(is_block ? TokenType::kBlockEnd : TokenType::kVarEnd, p));
        pos_ = end;
        line_starting_ = src_[end - 1] == '\n';
        return absl::OkStatus();
      }
    }
    if (size_t ws = PySpaceRun(src_, p); ws > 0) {
      p += ws;
      continue;
    }
    char c = src_[p];
    if (IsDigit(c)) {
      size_t q = p;
      while (q < src_.size() && (IsDigit(src_[q]) || src_[q] == '_')) ++q;
      bool is_float = false;
      if (q + 1 < src_.size() && src_[q] == '.' && IsDigit(src_[q + 1])) {
        is_float = true;
        ++q;
        while (q < src_.size() && (IsDigit(src_[q]) || src_[q] == '_')) ++q;
      }
      if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
        size_t r = q + 1;
        if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
        if (r < src_.size() && IsDigit(src_[r])) {
          while (r < src_.size() && IsDigit(src_[r])) ++r;
          is_float = true;
          q = r;
        }
      }
      std::string text = src_.substr(p, q - p);
      text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
      Token t = Make(is_float ? TokenType::kFloat : TokenType::kInt, p, text);
      if (is_float) {
        t.float_value = std::strtod(text.c_str(), nullptr);
      } else {
        errno = 0;
        t.int_value = std::strtoll(text.c_str(), nullptr, 10);
        if (errno == ERANGE) return Error(p, absl::StrCat("integer literal too large: ", text));
      }
      out_.push_back(std::move(t));
      p = q;
      continue;
    }
    if (IsNameStart(c)) {
      size_t q = p;
      while (q < src_.size() && IsNameChar(src_[q])) ++q;
      out_.push_back(Make(TokenType::kName, p, src_.substr(p, q - p)));
      p = q;
      continue;
    }
    if (c == '\'' || c == '"') {
      size_t q = p + 1;
      while (q < src_.size() && src_[q] != c) q += (src_[q] == '\\') ? 2 : 1;
      if (q >= src_.size()) return Error(p, "unterminated string literal");
      auto decoded = DecodeString(p, std::string_view(src_).substr(p + 1, q - p - 1));
      if (!decoded.ok()) return decoded.status();
      out_.push_back(Make(TokenType::kString, p, *std::move(decoded)));
      p = q + 1;
      continue;
    }
    std::string_view op;
    for (const char* candidate : kOps) {
      if (StartsWith(src_, p, candidate)) {
        op = candidate;
        break;
      }
    }
    if (op.empty()) return Error(p, absl::StrCat("unexpected character '", std::string(1, c), "'"));
    if (op == "(" || op == "[" || op == "{") {
      balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
    } else if (op == ")" || op == "]" || op == "}") {
      if (balance.empty()) return Error(p, absl::StrCat("unexpected '", std::string(op), "'"));
      if (balance.back() != op[0]) {
        return Error(p, absl::StrCat("unexpected '", std::string(op), "', expected '", std::string(1, balance.back()), "'"));
      }
      balance.pop_back();
    }
    out_.push_back(Make(TokenType::kOp, p, std::string(op)));
    p += op.size();
  }
}

}  // namespace

std::string Where(int line, int column) {
  return absl::StrCat("line ", line, ", column ", column, ": ");
}

absl::StatusOr<std::vector<Token>> Lex(std::string_view source) {
  Lexer lexer(source);
  return lexer.Run();
}

}  // namespace lil::jinja
