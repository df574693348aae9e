#include "spyglass/intern.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "spyglass/redact.hpp"

namespace SPYGLASS_NAMESPACE {
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
};

// Constant-initialised globals: usable from any static initialiser, never destroyed
// before a late thread is done with them.
constinit Table g_names;
constinit Table g_sql;
constinit Limits g_limits;
constinit std::atomic<std::uint64_t> g_overflowed{0};
constinit std::atomic<std::uint64_t> g_sql_uncached{0};

// Keep the tables' load factor at most 1/2 whatever the configured limits.
std::size_t capped(std::size_t n) noexcept { return n < Table::kSlots / 2 ? n : Table::kSlots / 2; }

}  // namespace

const char* intern(std::string_view text) noexcept {
  const Entry* e = g_names.find_or_insert(text, capped(g_limits.max_names.load(std::memory_order_relaxed)),
                                          g_limits.max_bytes.load(std::memory_order_relaxed),
                                          [](const char* own) { return own; });
  if (e == nullptr) {
    g_overflowed.fetch_add(1, std::memory_order_relaxed);
    return kOverflowName;
  }
  return e->value;
}

const char* intern_sql(std::string_view sql) noexcept {
  thread_local std::string redacted;  // reused: no allocation once it has grown
  const auto redact_and_intern = [&]() noexcept -> const char* {
    redacted.clear();
    try {
      redact_sql(sql, redacted);
    } catch (...) {
      return kOverflowName;
    }
    return intern(redacted);
  };
  const Entry* e = g_sql.find_or_insert(sql, capped(g_limits.max_sql.load(std::memory_order_relaxed)),
                                        g_limits.max_sql_bytes.load(std::memory_order_relaxed),
                                        [&](const char*) { return redact_and_intern(); });
  if (e != nullptr) return e->value;
  g_sql_uncached.fetch_add(1, std::memory_order_relaxed);
  return redact_and_intern();
}

InternStats intern_stats() noexcept {
  InternStats s;
  s.names = g_names.count();
  s.bytes = g_names.bytes();
  s.overflowed = g_overflowed.load(std::memory_order_relaxed);
  s.sql_cached = g_sql.count();
  s.sql_uncached = g_sql_uncached.load(std::memory_order_relaxed);
  return s;
}

void set_intern_limits(const InternLimits& limits) noexcept {
  g_limits.max_names.store(limits.max_names, std::memory_order_relaxed);
  g_limits.max_bytes.store(limits.max_bytes, std::memory_order_relaxed);
  g_limits.max_sql.store(limits.max_sql, std::memory_order_relaxed);
  g_limits.max_sql_bytes.store(limits.max_sql_bytes, std::memory_order_relaxed);
}

}  // namespace SPYGLASS_NAMESPACE
