#include "query/sql_lexer.h"

#include <cstdint>

namespace usagedb::query::sql_internal {

namespace {

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c) || c == '.'; }

// Offset of the first byte that breaks UTF-8 (RFC 3629), or npos when `s` is valid.
size_t FirstInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + n > s.size()) return i;
    for (size_t k = 1; k < n; k++) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const uint32_t min_cp = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n;
  }
  return std::string_view::npos;
}

// The character at `offset` for an error message: printable ASCII as is, else U+XXXX.
std::string ShowChar(std::string_view sql, size_t offset) {
  const auto c = static_cast<unsigned char>(sql[offset]);
  if (c >= 0x20 && c < 0x7F) return std::string("'") + static_cast<char>(c) + "'";
  if (c < 0x80) {
    static const char kHex[] = "0123456789ABCDEF";
    return std::string("U+00") + kHex[c >> 4] + kHex[c & 15];
  }
  size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
  return "'" + std::string(sql.substr(offset, n)) + "'";
}

}  // namespace

size_t CharPosition(std::string_view sql, size_t offset) {
  size_t pos = 1;
  for (size_t i = 0; i < offset && i < sql.size(); i++) {
    if ((static_cast<unsigned char>(sql[i]) & 0xC0) != 0x80) pos++;
  }
  return pos;
}

Status ErrorAt(std::string_view sql, size_t offset, std::string_view message) {
  return Status::InvalidArgument("at " + std::to_string(CharPosition(sql, offset)) + ": " +
                                 std::string(message));
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

Result<std::vector<Token>> Lex(std::string_view sql) {
  if (size_t bad = FirstInvalidUtf8(sql); bad != std::string_view::npos) {
    return ErrorAt(sql, bad, "the statement is not valid UTF-8");
  }
  std::vector<Token> tokens;
  size_t i = 0;
  const size_t n = sql.size();
  while (i < n) {
    const char c = sql[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      i++;
      continue;
    }
    if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') i++;
      continue;
    }
    if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      size_t end = sql.find("*/", i + 2);
      if (end == std::string_view::npos) return ErrorAt(sql, i, "unterminated /* comment");
      i = end + 2;
      continue;
    }
    Token t;
    t.offset = i;
    if (IsIdentStart(c)) {
      size_t j = i + 1;
      while (j < n && IsIdentChar(sql[j])) j++;
      t.kind = TokenKind::kWord;
      t.value.assign(sql.substr(i, j - i));
      i = j;
    } else if (IsDigit(c)) {
      size_t j = i + 1;
      while (j < n && IsDigit(sql[j])) j++;
      if (j < n && (IsIdentChar(sql[j]))) {
        size_t k = j;
        while (k < n && IsIdentChar(sql[k])) k++;
        return ErrorAt(sql, i,
                       "bad number " + std::string(sql.substr(i, std::min<size_t>(k - i, 40))) +
                           " (only integer literals are supported)");
      }
      t.kind = TokenKind::kInteger;
      t.value.assign(sql.substr(i, j - i));
      i = j;
    } else if (c == '\'' || c == '"') {
      // '' (or "") inside the literal is one quote character.
      size_t j = i + 1;
      std::string value;
      bool closed = false;
      while (j < n) {
        if (sql[j] == c) {
          if (j + 1 < n && sql[j + 1] == c) {
            value.push_back(c);
            j += 2;
            continue;
          }
          closed = true;
          j++;
          break;
        }
        value.push_back(sql[j]);
        j++;
      }
      if (!closed) {
        return ErrorAt(
            sql, i, c == '\'' ? "unterminated string literal" : "unterminated quoted identifier");
      }
      if (c == '"' && value.empty()) return ErrorAt(sql, i, "empty quoted identifier");
      t.kind = c == '\'' ? TokenKind::kString : TokenKind::kQuotedIdent;
      t.value = std::move(value);
      i = j;
    } else {
      static constexpr std::string_view kTwo[] = {"<=", ">=", "<>", "!=", "||", "::"};
      t.kind = TokenKind::kSymbol;
      for (std::string_view two : kTwo) {
        if (sql.substr(i, 2) == two) t.value.assign(two);
      }
      if (t.value.empty()) {
        static constexpr std::string_view kOne = "(),;*=<>+-/%.:[]{}^~&|!";
        if (kOne.find(c) == std::string_view::npos) {
          if (c == '`') {
            return ErrorAt(sql, i, "backquoted identifiers are not supported (use \"name\")");
          }
          if (c == '?' || c == '$') {
            return ErrorAt(sql, i,
                           "query parameters (" + std::string(1, c) + ") are not supported");
          }
          return ErrorAt(sql, i, "unexpected character " + ShowChar(sql, i));
        }
        t.value.assign(1, c);
      }
      i += t.value.size();
    }
    tokens.push_back(std::move(t));
  }
  Token end;
  end.kind = TokenKind::kEnd;
  end.offset = n;
  tokens.push_back(std::move(end));
  return tokens;
}

}  // namespace usagedb::query::sql_internal
