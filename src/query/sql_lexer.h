// Internal to src/query: the SQL tokenizer behind ParseSql (sql.h).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "usagedb/status.h"

namespace usagedb::query::sql_internal {

enum class TokenKind {
  kWord,         // unquoted identifier or keyword: [A-Za-z_][A-Za-z0-9_.]*
  kQuotedIdent,  // "..." with "" for a quote; value holds the unescaped text
  kString,       // '...' with '' for a quote; value holds the unescaped text
  kInteger,      // [0-9]+; value holds the digits
  kSymbol,       // ( ) , ; * = < <= > >= <> != + - / % || . : :: [ ] { } ^ ~ & | !
  kEnd,          // end of input (always the last token)
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string value;  // see TokenKind; for kWord and kSymbol the text as written
  size_t offset = 0;  // byte offset of the token's first byte in the statement
};

// The 1-based character (code point) position of byte `offset` in `sql`.
size_t CharPosition(std::string_view sql, size_t offset);

// "at <pos>: <message>" as InvalidArgument.
Status ErrorAt(std::string_view sql, size_t offset, std::string_view message);

// Splits `sql` into tokens, dropping whitespace and comments (`-- ...` to end of line,
// `/* ... */` not nested). InvalidArgument "at N: ..." for invalid UTF-8, an unterminated
// string, quoted identifier or comment, a malformed number (`1.5`, `1e3`) or a character
// that is no token. On success the last token is kEnd.
Result<std::vector<Token>> Lex(std::string_view sql);

// True for the words that cannot be a bare key or alias (SELECT, ORDER, JOIN, ...).
bool IsKeyword(std::string_view word);
// True when `s` written unquoted lexes as one word and names itself: the unquoted form reads
// as a key or alias exactly like the quoted form "s" (not a keyword, not a rejected construct,
// not a case variant of a reserved name, not table-qualified).
bool IsPlainIdentifier(std::string_view s);

// ASCII upper-case copy.
std::string Upper(std::string_view s);

}  // namespace usagedb::query::sql_internal
