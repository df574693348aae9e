#include "spyglass/intern.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "spyglass/redact.hpp"
#include "spyglass/utf8.hpp"

namespace SPYGLASS_NAMESPACE {

const char* const kOverflowName = "__overflow__";
namespace {

// FNV-1a is short and good enough for an open-addressing table keyed on full text.
std::uint64_t hash_text(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h ^ (h >> 29);
}

// One entry: its key text, NUL-terminated, and the value handed out for it.
struct Entry {
  std::uint64_t hash;
  std::size_t len;
  const char* value;  // for names: text itself; for SQL: the interned redacted text
  char text[1];
};

// A fixed-capacity, insert-only, lock-free hash table. Slots are published with a CAS;
// entries are never removed, so readers need no protection.
class Table {
 public:
  static constexpr std::size_t kSlots = 1u << 16;

  // Finds `key`; on a miss inserts it with make_value(entry_text) while under the limits.
  // Returns nullptr when the key is absent and the table is full.
  template <typename MakeValue>
  const Entry* find_or_insert(std::string_view key, std::size_t max_entries, std::size_t max_bytes,
                              MakeValue&& make_value) noexcept {
    const std::uint64_t h = hash_text(key);
    std::size_t i = static_cast<std::size_t>(h) & (kSlots - 1);
    Entry* fresh = nullptr;
    for (std::size_t probe = 0; probe < kSlots; ++probe, i = (i + 1) & (kSlots - 1)) {
      Entry* e = slots_[i].load(std::memory_order_acquire);
      if (e == nullptr) {
        if (fresh == nullptr) {
          if (count_.load(std::memory_order_relaxed) >= max_entries ||
              bytes_.load(std::memory_order_relaxed) + key.size() > max_bytes) {
            return nullptr;
          }
          fresh = static_cast<Entry*>(std::malloc(sizeof(Entry) + key.size()));
          if (fresh == nullptr) return nullptr;
          fresh->hash = h;
          fresh->len = key.size();
          if (!key.empty()) std::memcpy(fresh->text, key.data(), key.size());
          fresh->text[key.size()] = '\0';
          fresh->value = make_value(fresh->text);
          if (fresh->value == nullptr) {
            std::free(fresh);
            return nullptr;
          }
        }
        if (slots_[i].compare_exchange_strong(e, fresh, std::memory_order_acq_rel)) {
          count_.fetch_add(1, std::memory_order_relaxed);
          bytes_.fetch_add(key.size(), std::memory_order_relaxed);
          return fresh;
        }
        // Lost the race for this slot: `e` now holds the winner; fall through to compare.
      }
      if (e->hash == h && e->len == key.size() && std::memcmp(e->text, key.data(), key.size()) == 0) {
        std::free(fresh);
        return e;
      }
    }
    std::free(fresh);
    return nullptr;
  }

  std::size_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }

 private:
  std::atomic<Entry*> slots_[kSlots] = {};
  std::atomic<std::size_t> count_{0};
  std::atomic<std::size_t> bytes_{0};
};

struct Limits {
  std::atomic<std::size_t> max_names{InternLimits{}.max_names};
  std::atomic<std::size_t> max_bytes{InternLimits{}.max_bytes};
  std::atomic<std::size_t> max_sql{InternLimits{}.max_sql};
  std::atomic<std::size_t> max_sql_bytes{InternLimits{}.max_sql_bytes};
  std::atomic<std::size_t> max_name_bytes{InternLimits{}.max_name_bytes};
  std::atomic<std::size_t> max_statement_bytes{InternLimits{}.max_statement_bytes};
};

// Constant-initialised globals: usable from any static initialiser, never destroyed
// before a late thread is done with them.
constinit Table g_names;
constinit Table g_sql;
constinit Limits g_limits;
constinit std::atomic<std::uint64_t> g_overflowed{0};
constinit std::atomic<std::uint64_t> g_sql_uncached{0};
constinit std::atomic<std::uint64_t> g_truncated{0};

// Keep the tables' load factor at most 1/2 whatever the configured limits.
std::size_t capped(std::size_t n) noexcept { return n < Table::kSlots / 2 ? n : Table::kSlots / 2; }

std::size_t text_cap(const std::atomic<std::size_t>& limit) noexcept {
  const std::size_t cap = limit.load(std::memory_order_relaxed);
  return cap < kMinTextCap ? kMinTextCap : cap;
}

/// True when `text` is already what interning keeps: valid UTF-8, no NUL, within `cap`.
bool fit_as_is(std::string_view text, std::size_t cap) noexcept {
  return text.size() <= cap && std::memchr(text.data(), '\0', text.size()) == nullptr && is_valid_utf8(text);
}

/// Writes into `out` the text interning keeps for `text` (see intern.hpp): UTF-8 repaired,
/// each NUL replaced by U+FFFD, then cut to at most `cap` bytes with the marker at the end.
/// Returns true when it cut. Reads at most cap + 4 bytes of `text`: repair never shortens
/// text, so when more than that is left the result is cut anyway, and whatever a sequence
/// cut off at the end of that window is repaired into lies past `cap`, which the cut removes.
bool fit_text(std::string_view text, std::size_t cap, std::string& out) {
  out.clear();
  std::string_view rest = text.size() > cap && text.size() - cap > 4 ? text.substr(0, cap + 4) : text;
  // Splitting at NUL gives the same repair as the whole: NUL never continues a sequence.
  for (std::size_t nul = rest.find('\0'); nul != std::string_view::npos; nul = rest.find('\0')) {
    append_utf8_repaired(rest.substr(0, nul), out);
    out.append(kReplacementCharacter);
    rest.remove_prefix(nul + 1);
  }
  append_utf8_repaired(rest, out);
  if (out.size() <= cap) return false;
  std::size_t cut = cap - kTruncationMarker.size();
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
  out.resize(cut);
  out.append(kTruncationMarker);
  return true;
}

/// Interns `text` into the names table as it is.
const char* intern_fitted(std::string_view text) noexcept {
  const Entry* e = g_names.find_or_insert(text, capped(g_limits.max_names.load(std::memory_order_relaxed)),
                                          g_limits.max_bytes.load(std::memory_order_relaxed),
                                          [](const char* own) { return own; });
  if (e == nullptr) {
    g_overflowed.fetch_add(1, std::memory_order_relaxed);
    return kOverflowName;
  }
  return e->value;
}

/// Interns `text` repaired and cut to `cap` bytes.
const char* intern_capped(std::string_view text, std::size_t cap) noexcept {
  if (fit_as_is(text, cap)) return intern_fitted(text);
  thread_local std::string fitted;  // reused: no allocation once it has grown
  try {
    if (fit_text(text, cap, fitted)) g_truncated.fetch_add(1, std::memory_order_relaxed);
  } catch (...) {
    return kOverflowName;  // out of memory for the buffer
  }
  return intern_fitted(fitted);
}

}  // namespace

const char* intern(std::string_view text) noexcept {
  return intern_capped(text, text_cap(g_limits.max_name_bytes));
}

const char* intern_sql(std::string_view sql) noexcept {
  thread_local std::string redacted;  // reused: no allocation once it has grown
  const std::size_t cap = text_cap(g_limits.max_statement_bytes);
  const auto redact_and_intern = [&]() noexcept -> const char* {
    redacted.clear();
    try {
      redact_sql(sql, redacted);
    } catch (...) {
      return kOverflowName;
    }
    return intern_capped(redacted, cap);
  };
  // Statements far longer than the cap are not cached: their text would crowd out others.
  if ((sql.size() + 7) / 8 <= cap) {  // size <= 8 * cap, without overflow
    const Entry* e = g_sql.find_or_insert(sql, capped(g_limits.max_sql.load(std::memory_order_relaxed)),
                                          g_limits.max_sql_bytes.load(std::memory_order_relaxed),
                                          [&](const char*) { return redact_and_intern(); });
    if (e != nullptr) return e->value;
  }
  g_sql_uncached.fetch_add(1, std::memory_order_relaxed);
  return redact_and_intern();
}

InternStats intern_stats() noexcept {
  InternStats s;
  s.names = g_names.count();
  s.bytes = g_names.bytes();
  s.overflowed = g_overflowed.load(std::memory_order_relaxed);
  s.truncated = g_truncated.load(std::memory_order_relaxed);
  s.sql_cached = g_sql.count();
  s.sql_uncached = g_sql_uncached.load(std::memory_order_relaxed);
  return s;
}

void set_intern_limits(const InternLimits& limits) noexcept {
  g_limits.max_names.store(limits.max_names, std::memory_order_relaxed);
  g_limits.max_bytes.store(limits.max_bytes, std::memory_order_relaxed);
  g_limits.max_sql.store(limits.max_sql, std::memory_order_relaxed);
  g_limits.max_sql_bytes.store(limits.max_sql_bytes, std::memory_order_relaxed);
  g_limits.max_name_bytes.store(limits.max_name_bytes, std::memory_order_relaxed);
  g_limits.max_statement_bytes.store(limits.max_statement_bytes, std::memory_order_relaxed);
}

}  // namespace SPYGLASS_NAMESPACE
