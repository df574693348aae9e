// SQL redaction: a single-pass scanner; see the rules in spyglass/redact.hpp.
#include "spyglass/redact.hpp"

#include <algorithm>
#include <array>

namespace SPYGLASS_NAMESPACE {

namespace {

constexpr std::size_t npos = std::string::npos;

constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_hex(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
// Bytes >= 0x80 belong to identifiers so that UTF-8 names are kept whole.
constexpr bool is_ident_start(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
constexpr bool is_ident_char(char c) noexcept { return is_ident_start(c) || is_digit(c) || c == '$'; }
// Characters after which a '-' is a sign, not a subtraction.
constexpr bool is_operator(char c) noexcept {
  return std::string_view("=<>!+-*/%^&|~@#:;[").find(c) != std::string_view::npos;
}

// What the previous token was: decides whether '-' is a sign and whether '(' opens a list.
enum class Prev { kNone, kOperator, kOpen, kComma, kKeyword, kIn, kValues, kClose, kValue, kOther };

// Keywords after which an expression starts (so a following '-' is a sign).
constexpr std::array<std::string_view, 38> kKeywords = {
    "select",   "where",     "and",    "or",    "not",     "in",     "values", "set",  "between", "like",
    "ilike",    "is",        "when",   "then",  "else",    "case",   "on",     "by",   "limit",   "offset",
    "return",   "returning", "having", "as",    "default", "exists", "any",    "all",  "some",    "union",
    "distinct", "interval",  "top",    "fetch", "first",   "next",   "rows",   "using"};

Prev classify_word(std::string_view w) noexcept {
  if (w.size() > 9) return Prev::kValue;
  char lower[9];
  for (std::size_t i = 0; i < w.size(); ++i) {
    const char c = w[i];
    lower[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  const std::string_view l(lower, w.size());
  if (l == "in") return Prev::kIn;
  if (l == "values") return Prev::kValues;
  if (std::find(kKeywords.begin(), kKeywords.end(), l) != kKeywords.end()) return Prev::kKeyword;
  return Prev::kValue;  // an identifier: a following '-' is a subtraction
}

class Redactor {
 public:
  Redactor(std::string_view in, std::string& out) : in_(in), out_(out), base_(out.size()) {}

  void run() {
    const std::size_t n = in_.size();
    while (i_ < n) {
      const char c = in_[i_];
      const char next = i_ + 1 < n ? in_[i_ + 1] : '\0';
      if (is_space(c)) {
        gap();
        ++i_;
      } else if (c == '-' && next == '-') {
        while (i_ < n && in_[i_] != '\n') ++i_;
        gap();
      } else if (c == '/' && next == '*') {
        const std::size_t end = in_.find("*/", i_ + 2);
        if (end == npos) return unterminated();
        i_ = end + 2;
        gap();
      } else if (c == '\'') {
        if (!skip_quoted(i_ + 1)) return unterminated();
        value();
      } else if ((c == 'E' || c == 'e' || c == 'N' || c == 'n' || c == 'X' || c == 'x' || c == 'B' ||
                  c == 'b') &&
                 next == '\'') {
        if (!skip_quoted(i_ + 2)) return unterminated();
        value();
      } else if (c == '"' || c == '`') {
        const std::size_t start = i_;
        if (!skip_identifier(c)) return unterminated();
        token(in_.substr(start, i_ - start), Prev::kValue);
      } else if (c == '$') {
        if (!dollar()) return unterminated();
      } else if (is_digit(c) || (c == '.' && is_digit(next))) {
        i_ = number_end(i_);
        value();
      } else if (c == '-' && sign_allowed() &&
                 (is_digit(next) || (next == '.' && i_ + 2 < n && is_digit(in_[i_ + 2])))) {
        i_ = number_end(i_ + 1);
        value();
      } else if (is_ident_start(c)) {
        const std::size_t start = i_;
        while (i_ < n && is_ident_char(in_[i_])) ++i_;
        const std::string_view word = in_.substr(start, i_ - start);
        token(word, classify_word(word));
      } else if (c == '?' && is_digit(next)) {
        // SQLite's numbered parameter ?NNN: a placeholder, like $1, not `?` and a number.
        const std::size_t start = i_++;
        while (i_ < n && is_digit(in_[i_])) ++i_;
        token(in_.substr(start, i_ - start), Prev::kValue);
      } else if (c == '?') {
        ++i_;
        value();
      } else if (c == '(') {
        ++i_;
        open();
      } else if (c == ')') {
        ++i_;
        close();
      } else if (c == ',') {
        ++i_;
        comma();
      } else {
        ++i_;
        token(in_.substr(i_ - 1, 1), is_operator(c) ? Prev::kOperator : Prev::kOther);
      }
    }
  }

 private:
  // Whitespace or a comment: at most one space, and none at the start.
  void gap() noexcept { pending_space_ = out_.size() > base_; }

  void put(std::string_view text) {
    if (pending_space_) out_.push_back(' ');
    pending_space_ = false;
    out_.append(text);
  }

  // Ends the chain of collapsed VALUES tuples unless this token continues it.
  void reset_chain() noexcept {
    after_tuple_ = false;
    tuple_comma_ = npos;
  }

  // Any token that is not part of an all-value list.
  void token(std::string_view text, Prev kind) {
    reset_chain();
    list_open_ = npos;
    put(text);
    prev_ = kind;
  }

  void value() {
    reset_chain();
    put("?");
    if (list_open_ != npos) list_has_value_ = true;
    prev_ = Prev::kValue;
  }

  void open() {
    const std::size_t merge_at = (prev_ == Prev::kComma) ? tuple_comma_ : npos;
    const bool list = prev_ == Prev::kIn || prev_ == Prev::kValues || merge_at != npos;
    reset_chain();
    put("(");
    if (list) {
      list_open_ = out_.size();
      list_has_value_ = false;
      list_is_tuple_ = prev_ != Prev::kIn;
      merge_at_ = merge_at;
    } else {
      list_open_ = npos;
    }
    prev_ = Prev::kOpen;
  }

  void close() {
    reset_chain();
    if (list_open_ != npos && list_has_value_) {
      out_.resize(list_open_);
      out_.append("?)");
      pending_space_ = false;
      if (list_is_tuple_) {
        // Drop ", (?)" after an identical tuple: the run is written once.
        if (merge_at_ != npos) out_.resize(merge_at_);
        after_tuple_ = true;
      }
    } else {
      put(")");
    }
    list_open_ = npos;
    prev_ = Prev::kClose;
  }

  void comma() {
    const bool chained = after_tuple_ && prev_ == Prev::kClose;
    reset_chain();
    const std::size_t at = out_.size();
    put(",");
    if (chained) tuple_comma_ = at;
    prev_ = Prev::kComma;
  }

  // The rest of the input is an unterminated literal or comment: hide all of it.
  void unterminated() {
    reset_chain();
    put("?");
    i_ = in_.size();
  }

  bool sign_allowed() const noexcept {
    switch (prev_) {
      case Prev::kNone:
      case Prev::kOperator:
      case Prev::kOpen:
      case Prev::kComma:
      case Prev::kKeyword:
      case Prev::kIn:
      case Prev::kValues: return true;
      default: return false;
    }
  }

  // Skips a single-quoted string whose body starts at `from`; false if unterminated.
  bool skip_quoted(std::size_t from) noexcept {
    std::size_t j = from;
    const std::size_t n = in_.size();
    while (j < n) {
      if (in_[j] == '\\') {
        j += 2;
      } else if (in_[j] == '\'') {
        if (j + 1 < n && in_[j + 1] == '\'') {
          j += 2;
        } else {
          i_ = j + 1;
          return true;
        }
      } else {
        ++j;
      }
    }
    return false;
  }

  // Skips a quoted identifier ("..." or `...`, the quote doubled to escape it).
  bool skip_identifier(char q) noexcept {
    std::size_t j = i_ + 1;
    const std::size_t n = in_.size();
    while (j < n) {
      if (in_[j] == q) {
        if (j + 1 < n && in_[j + 1] == q) {
          j += 2;
          continue;
        }
        i_ = j + 1;
        return true;
      }
      ++j;
    }
    return false;
  }

  // At '$': a positional parameter, a dollar-quoted string or a lone '$'. False if a
  // dollar-quoted string is unterminated.
  bool dollar() {
    const std::size_t n = in_.size();
    std::size_t j = i_ + 1;
    if (j < n && is_digit(in_[j])) {
      while (j < n && is_digit(in_[j])) ++j;
      token(in_.substr(i_, j - i_), Prev::kValue);
      i_ = j;
      return true;
    }
    if (j < n && is_ident_start(in_[j])) {
      while (j < n && is_ident_char(in_[j]) && in_[j] != '$') ++j;
    }
    if (j < n && in_[j] == '$') {
      const std::string_view tag = in_.substr(i_, j + 1 - i_);
      const std::size_t end = in_.find(tag, j + 1);
      if (end == npos) return false;
      i_ = end + tag.size();
      value();
      return true;
    }
    ++i_;
    token("$", Prev::kOther);
    return true;
  }

  // End of the number starting at `j` (a digit, or '.' followed by a digit).
  std::size_t number_end(std::size_t j) const noexcept {
    const std::size_t n = in_.size();
    auto at = [&](std::size_t k) { return k < n ? in_[k] : '\0'; };
    if (at(j) == '0' && (at(j + 1) == 'x' || at(j + 1) == 'X') && is_hex(at(j + 2))) {
      j += 2;
      while (is_hex(at(j))) ++j;
      return j;
    }
    if (at(j) == '0' && (at(j + 1) == 'b' || at(j + 1) == 'B') && (at(j + 2) == '0' || at(j + 2) == '1')) {
      j += 2;
      while (at(j) == '0' || at(j) == '1') ++j;
      return j;
    }
    while (is_digit(at(j))) ++j;
    if (at(j) == '.') {
      ++j;
      while (is_digit(at(j))) ++j;
    }
    if (at(j) == 'e' || at(j) == 'E') {
      std::size_t k = j + 1;
      if (at(k) == '+' || at(k) == '-') ++k;
      if (is_digit(at(k))) {
        j = k;
        while (is_digit(at(j))) ++j;
      }
    }
    return j;
  }

  std::string_view in_;
  std::string& out_;
  std::size_t base_;  // where this call's output starts in out_
  std::size_t i_ = 0;
  bool pending_space_ = false;
  Prev prev_ = Prev::kNone;
  // Candidate list: position just after its '(' in out_, or npos.
  std::size_t list_open_ = npos;
  bool list_has_value_ = false;
  bool list_is_tuple_ = false;
  std::size_t merge_at_ = npos;  // for a VALUES tuple after a collapsed one: its ','
  // VALUES chain: right after a collapsed tuple, and the ',' that followed it.
  bool after_tuple_ = false;
  std::size_t tuple_comma_ = npos;
};

}  // namespace

void redact_sql(std::string_view sql, std::string& out) { Redactor(sql, out).run(); }

std::string redact_sql(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  redact_sql(sql, out);
  return out;
}

}  // namespace SPYGLASS_NAMESPACE
