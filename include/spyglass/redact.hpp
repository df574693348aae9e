#pragma once
/// SQL redaction: replaces literals with `?` so that query text can be exported and
/// grouped without leaking values.
///
/// Rules, applied in one left-to-right pass (no SQL grammar, no allocation besides `out`):
/// - String literals become `?`: '...' with '' doubled quotes and backslash escapes, the
///   same with an E, N, X or B prefix (E'..', N'..', X'1F', B'01'), and dollar-quoted
///   strings $$...$$ and $tag$...$tag$.
/// - Numbers become `?`: 42, 3.14, .5, 1., 1e10, 1.5E-3, 0x1F, 0b101. A '-' directly
///   before a number is folded into it when it is a sign, i.e. at the start, after an
///   operator, '(', '[', ',' or a keyword (SELECT, WHERE, AND, =, ...); `a - 1` stays a
///   subtraction (`a - ?`).
/// - Kept verbatim: identifiers including their digits (t1, col2, a$b), "double-quoted"
///   and `backtick` identifiers, positional parameters $1 and ?1 (SQLite's ?NNN), existing
///   `?` placeholders, operators and punctuation.
/// - Lists: `IN (?, ?, ?)` becomes `IN (?)` when the list holds only redacted values;
///   `VALUES (?, ?), (?, ?)` becomes `VALUES (?)`: each all-value tuple collapses to
///   `(?)` and a run of such tuples to one, so batch inserts of any size and width group
///   together. A tuple holding anything else (now(), DEFAULT, $1, ?1) is left as is and ends
///   the run.
/// - Comments (`-- ...` to end of line, `/* ... */`, not nested) are removed; they and
///   whitespace runs become one space; the result is trimmed.
/// - Unterminated strings, quoted identifiers and block comments: the rest of the input
///   becomes one `?`, so a truncated query never leaks its tail.
///
/// Guarantees: never reads outside `sql`; the appended output is never longer than `sql`;
/// redacting an already redacted query returns it unchanged. `#` comments and nested
/// block comments are not recognised. Thread-safe (pure function).

#include <string>
#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE {

/// Appends the redacted form of `sql` to `out`. See the rules above.
SPYGLASS_API void redact_sql(std::string_view sql, std::string& out);

/// The redacted form of `sql`. See the rules above.
SPYGLASS_API std::string redact_sql(std::string_view sql);

}  // namespace SPYGLASS_NAMESPACE
