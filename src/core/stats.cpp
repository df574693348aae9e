// StatsStore: per-(kind, name) series, each a ring of sub-window slots holding a
// log-linear histogram whose chunks (one per power of two) come from a shared pool, plus
// the running sum of its closed sub-windows' histograms, so that a snapshot reads that sum
// and the open sub-window instead of merging every sub-window's.

#include "spyglass/stats.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "spyglass/clock.hpp"
#include "spyglass/json.hpp"

namespace SPYGLASS_NAMESPACE {

const char* const kStatsOtherName = "__other__";

namespace {

// Histogram layout: chunk 0 holds the exact values 0..63; chunk c >= 1 holds the power of
// two [2^(c+5), 2^(c+6)) split into 64 linear sub-buckets (width 2^(c-1)). A bucket's
// width is at most 1/64 of its lower bound, so its midpoint is within 1/128 of any value
// in it.
constexpr unsigned kSubBits = 6;
constexpr std::size_t kSub = std::size_t{1} << kSubBits;
constexpr unsigned kMaxExp = 43;  // highest resolved power of two: values below 2^44
constexpr std::size_t kChunks = 1 + (kMaxExp + 1 - kSubBits);
static_assert(kChunks <= 64, "touched-chunk masks are 64-bit");

constexpr std::uint64_t kNoEpoch = std::numeric_limits<std::uint64_t>::max();
constexpr std::size_t kChunksPerBlock = 16;

using Chunk = std::array<std::uint32_t, kSub>;

// A chunk of a series' closed total: the sum of up to 3,600 sub-windows' 32-bit counts.
using WideChunk = std::array<std::uint64_t, kSub>;

// Chunks in blocks of kChunksPerBlock, addressed by id (1-based; 0: none), recycled
// zeroed through a free list so that a steady state allocates nothing.
template <class C>
struct ChunkPool {
  std::vector<std::unique_ptr<C[]>> blocks;
  std::size_t made = 0;
  std::vector<std::uint32_t> free;

  C& at(std::uint32_t id) noexcept {
    const std::size_t i = id - 1;
    return blocks[i / kChunksPerBlock][i % kChunksPerBlock];
  }
  const C& at(std::uint32_t id) const noexcept {
    const std::size_t i = id - 1;
    return blocks[i / kChunksPerBlock][i % kChunksPerBlock];
  }
  std::uint32_t alloc() {
    if (!free.empty()) {
      const std::uint32_t id = free.back();
      free.pop_back();
      return id;
    }
    if (made == blocks.size() * kChunksPerBlock) {
      blocks.push_back(std::make_unique<C[]>(kChunksPerBlock));  // zeroed
    }
    return static_cast<std::uint32_t>(++made);
  }
  // Takes back a chunk the caller has zeroed.
  void release(std::uint32_t id) { free.push_back(id); }
  std::size_t bytes() const noexcept {
    return blocks.size() * (kChunksPerBlock * sizeof(C) + sizeof(void*)) +
           free.capacity() * sizeof(std::uint32_t);
  }
  void clear() noexcept {
    blocks.clear();
    made = 0;
    free.clear();
  }
};

struct BucketIndex {
  std::size_t chunk;
  std::size_t sub;
};

inline BucketIndex bucket_of(std::uint64_t v) noexcept {
  if (v < kSub) return {0, static_cast<std::size_t>(v)};
  const unsigned e = static_cast<unsigned>(std::bit_width(v)) - 1;
  if (e > kMaxExp) return {kChunks - 1, kSub - 1};
  const unsigned shift = e - kSubBits;
  return {e - kSubBits + 1, static_cast<std::size_t>((v >> shift) - kSub)};
}

// The value a bucket reports: the midpoint of the integers it holds.
inline double bucket_value(std::size_t chunk, std::size_t sub) noexcept {
  if (chunk == 0) return static_cast<double>(sub);
  const unsigned shift = static_cast<unsigned>(chunk - 1);
  const std::uint64_t lo = static_cast<std::uint64_t>(kSub + sub) << shift;
  const std::uint64_t width = std::uint64_t{1} << shift;
  return static_cast<double>(lo) + static_cast<double>(width - 1) / 2.0;
}

struct Slot {
  std::uint64_t epoch = kNoEpoch;  // absolute sub-window number: start / slot_ns
  std::uint64_t count = 0;
  std::uint64_t errors = 0;
  std::uint64_t max = 0;
  std::uint64_t min = std::numeric_limits<std::uint64_t>::max();
  double sum = 0;
  std::uint64_t mask = 0;                      // bit c: chunk[c] allocated
  std::array<std::uint32_t, kChunks> chunk{};  // pool id; 0: not allocated
};

struct Series {
  EventKind kind;
  bool overflow_sink;  // the "__other__" series of its kind
  // The open sub-window is `last_epoch`, the newest; the others holding events are
  // closed (`closed` of them, at most 3,600). `total` is the sum of the closed ones'
  // histograms, kept as a sub-window closes, a late event lands in a closed one, or a
  // slot is reset: exactly their merge. Recording into the open sub-window, the common
  // case, leaves it alone. (Kept here, with the fields below, in the first cache line a
  // snapshot reads.)
  std::uint32_t closed = 0;
  // The closed sub-windows' oldest epoch, count, errors, sum, max and min, kept with
  // `total`, so that a snapshot whose window holds every closed sub-window (the steady
  // state) reads none of their slots.
  std::uint64_t closed_lo = kNoEpoch;
  std::uint64_t closed_count = 0;
  std::uint64_t closed_errors = 0;
  double closed_sum = 0;
  std::uint64_t closed_max = 0;
  std::uint64_t closed_min = std::numeric_limits<std::uint64_t>::max();
  std::string name;
  std::unique_ptr<Slot[]> slots;
  // The oldest and newest sub-windows any slot was ever set to: a snapshot visits only
  // the slots that can hold a sub-window inside both this range and its window.
  std::uint64_t first_epoch = kNoEpoch;
  std::uint64_t last_epoch = 0;
  std::uint64_t total_mask = 0;                // bit c: total[c] allocated
  std::array<std::uint32_t, kChunks> total{};  // wide pool id; 0: not allocated
};

// Pointer-keyed cache in front of the text-keyed map: open addressing, linear probing.
struct PtrEntry {
  const char* p = nullptr;  // nullptr: empty
  std::uint32_t series = 0;
  EventKind kind = EventKind::custom;
  bool overflow = false;  // the name was turned away (table full) and goes to "__other__"
};

inline std::size_t ptr_hash(const char* p, EventKind k) noexcept {
  const auto x = reinterpret_cast<std::uintptr_t>(p) ^ (static_cast<std::uintptr_t>(k) << 1);
  return static_cast<std::size_t>((x >> 3) * 0x9E3779B97F4A7C15ULL) ^ static_cast<std::size_t>(x >> 29);
}

constexpr const char kEmptyName[] = "";

}  // namespace

namespace detail {

struct StatsImpl {
  explicit StatsImpl(StatsOptions o) : opt(o) {
    // Bounded so that every ns quantity below fits in 64 bits with room to spare.
    constexpr std::chrono::seconds kMaxSpan = std::chrono::hours(24 * 366);
    opt.window = std::clamp<std::chrono::seconds>(opt.window, std::chrono::seconds(1), kMaxSpan);
    opt.slots = std::clamp<std::size_t>(opt.slots, 1, 3600);
    opt.future_tolerance =
        std::clamp<std::chrono::seconds>(opt.future_tolerance, std::chrono::seconds(0), kMaxSpan);
    const auto window_ns =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(opt.window).count());
    slot_ns = window_ns / opt.slots;
    tolerance_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(opt.future_tolerance).count());
    reset_cache(64);
  }

  StatsOptions opt;
  std::uint64_t slot_ns = 1;
  std::uint64_t tolerance_ns = 0;

  mutable std::mutex m;  // guards everything below
  std::vector<std::unique_ptr<Series>> series;
  std::vector<std::uint32_t> order;  // series indices sorted by (kind, name), as snapshots list them
  std::unordered_map<std::string, std::uint32_t> by_text;  // key: kind byte + name
  std::size_t named = 0;                                   // series counted against max_names
  std::vector<PtrEntry> cache;
  std::size_t cache_used = 0;
  ChunkPool<Chunk> pool;      // sub-window chunks
  ChunkPool<WideChunk> wide;  // running-total chunks
  std::uint64_t overflowed = 0;
  std::uint64_t dropped_old = 0;
  std::uint64_t dropped_future = 0;

  void reset_cache(std::size_t cap) {
    cache.assign(cap, PtrEntry{});
    cache_used = 0;
  }

  // Adds the open sub-window's histogram to the series' total as a newer one opens.
  void close_slot(Series& ser, const Slot& s) {
    if (s.count == 0) return;
    for (std::uint64_t left = s.mask; left != 0; left &= left - 1) {
      const auto c = static_cast<std::size_t>(std::countr_zero(left));
      if ((ser.total_mask >> c & 1) == 0) {
        ser.total[c] = wide.alloc();
        ser.total_mask |= std::uint64_t{1} << c;
      }
      const std::uint32_t* __restrict src = pool.at(s.chunk[c]).data();
      std::uint64_t* __restrict dst = wide.at(ser.total[c]).data();
      for (std::size_t j = 0; j < kSub; ++j) dst[j] += src[j];
    }
    ++ser.closed;
    ser.closed_lo = std::min(ser.closed_lo, s.epoch);
    ser.closed_count += s.count;
    ser.closed_errors += s.errors;
    ser.closed_sum += s.sum;
    ser.closed_max = std::max(ser.closed_max, s.max);
    ser.closed_min = std::min(ser.closed_min, s.min);
  }

  // Empties a closed slot for a new sub-window: its counts leave the series' total and its
  // chunks go back to the pool, zeroed.
  void reset_slot(Series& ser, Slot& s, std::uint64_t epoch) {
    if (s.count != 0) {
      for (std::uint64_t left = s.mask; left != 0; left &= left - 1) {
        const auto c = static_cast<std::size_t>(std::countr_zero(left));
        Chunk& chunk = pool.at(s.chunk[c]);
        std::uint64_t* __restrict dst = wide.at(ser.total[c]).data();
        for (std::size_t j = 0; j < kSub; ++j) dst[j] -= chunk[j];
        chunk.fill(0);
        pool.release(s.chunk[c]);
        s.chunk[c] = 0;
      }
      ser.closed_count -= s.count;
      ser.closed_errors -= s.errors;
      ser.closed_sum -= s.sum;
      if (--ser.closed == 0) {
        // No closed sub-window left: the total is all zeros and its chunks can go too.
        for (std::uint64_t left = ser.total_mask; left != 0; left &= left - 1) {
          const auto c = static_cast<std::size_t>(std::countr_zero(left));
          wide.release(ser.total[c]);
          ser.total[c] = 0;
        }
        ser.total_mask = 0;
        ser.closed_lo = kNoEpoch;
        ser.closed_sum = 0;  // not a rounding residue
        ser.closed_max = 0;
        ser.closed_min = std::numeric_limits<std::uint64_t>::max();
      } else if (s.epoch == ser.closed_lo || s.max == ser.closed_max || s.min == ser.closed_min) {
        // The oldest epoch and the extremes cannot be taken out: found again among the
        // other closed slots (once a sub-window per series at most).
        ser.closed_lo = kNoEpoch;
        ser.closed_max = 0;
        ser.closed_min = std::numeric_limits<std::uint64_t>::max();
        const Slot* open = &ser.slots[ser.last_epoch % opt.slots];
        for (std::size_t i = 0; i < opt.slots; ++i) {
          const Slot& o = ser.slots[i];
          if (&o == &s || &o == open || o.count == 0) continue;
          ser.closed_lo = std::min(ser.closed_lo, o.epoch);
          ser.closed_max = std::max(ser.closed_max, o.max);
          ser.closed_min = std::min(ser.closed_min, o.min);
        }
      }
    }
    s.mask = 0;
    s.epoch = epoch;
    s.count = 0;
    s.errors = 0;
    s.max = 0;
    s.min = std::numeric_limits<std::uint64_t>::max();
    s.sum = 0;
  }

  std::uint32_t new_series(EventKind kind, std::string_view name, bool sink, std::string key) {
    auto s = std::make_unique<Series>();
    s->kind = kind;
    s->overflow_sink = sink;
    s->name.assign(name);
    s->slots = std::make_unique<Slot[]>(opt.slots);
    const auto idx = static_cast<std::uint32_t>(series.size());
    const auto at =
        std::lower_bound(order.begin(), order.end(), s.get(), [this](std::uint32_t i, const Series* n) {
          const Series& o = *series[i];
          return o.kind != n->kind ? o.kind < n->kind : o.name < n->name;
        });
    order.insert(at, idx);
    series.push_back(std::move(s));
    by_text.emplace(std::move(key), idx);
    return idx;
  }

  static std::string text_key(EventKind kind, std::string_view name) {
    std::string key;
    key.reserve(name.size() + 1);
    key.push_back(static_cast<char>(kind));
    key.append(name);
    return key;
  }

  // Slow path: a (pointer, kind) pair the cache has not seen.
  PtrEntry resolve(const char* p, EventKind kind) {
    std::string key = text_key(kind, p);
    if (auto it = by_text.find(key); it != by_text.end()) return {p, it->second, kind, false};
    if (named < opt.max_names) {
      ++named;
      return {p, new_series(kind, std::string_view(p), false, std::move(key)), kind, false};
    }
    std::string other = text_key(kind, kStatsOtherName);
    std::uint32_t idx;
    if (auto it = by_text.find(other); it != by_text.end()) {
      idx = it->second;
    } else {
      idx = new_series(kind, kStatsOtherName, true, std::move(other));
    }
    return {p, idx, kind, true};
  }

  const PtrEntry& lookup(const char* p, EventKind kind) {
    std::size_t mask = cache.size() - 1;
    std::size_t i = ptr_hash(p, kind) & mask;
    while (cache[i].p != nullptr) {
      if (cache[i].p == p && cache[i].kind == kind) return cache[i];
      i = (i + 1) & mask;
    }
    const PtrEntry e = resolve(p, kind);
    // Bound the cache: overflowing names may bring endless distinct pointers.
    if (cache_used >= 4 * opt.max_names + 1024) {
      reset_cache(cache.size());
    } else if ((cache_used + 1) * 2 > cache.size()) {
      std::vector<PtrEntry> old;
      old.swap(cache);
      reset_cache(old.size() * 2);
      for (const auto& o : old) {
        if (o.p != nullptr) insert(o);
      }
    }
    return insert(e);
  }

  PtrEntry& insert(const PtrEntry& e) {
    const std::size_t mask = cache.size() - 1;
    std::size_t i = ptr_hash(e.p, e.kind) & mask;
    while (cache[i].p != nullptr) i = (i + 1) & mask;
    cache[i] = e;
    ++cache_used;
    return cache[i];
  }

  void record(std::span<const Event> events, std::uint64_t now) {
    const std::uint64_t slots = opt.slots;
    const std::uint64_t now_epoch = now / slot_ns;
    // Most events fall into the current sub-window: skip the divisions for them.
    const std::uint64_t cur_lo = now_epoch * slot_ns;
    const std::size_t cur_pos = static_cast<std::size_t>(now_epoch % slots);

    std::lock_guard<std::mutex> lock(m);
    for (const Event& e : events) {
      std::uint64_t epoch;
      std::size_t pos;
      if (e.start >= cur_lo) {
        if (e.start > now && e.start - now > tolerance_ns) {
          ++dropped_future;
          continue;
        }
        epoch = now_epoch;  // the current sub-window, or a little ahead of now: clamped
        pos = cur_pos;
      } else {
        epoch = e.start / slot_ns;
        if (now_epoch - epoch >= slots) {
          ++dropped_old;
          continue;
        }
        pos = static_cast<std::size_t>(epoch % slots);
      }

      const PtrEntry& ref = lookup(e.name != nullptr ? e.name : kEmptyName, e.kind);
      if (SPYGLASS_UNLIKELY(ref.overflow)) ++overflowed;
      Series& ser = *series[ref.series];
      Slot& s = ser.slots[pos];
      if (SPYGLASS_UNLIKELY(s.epoch != epoch)) {
        if (s.epoch != kNoEpoch && s.epoch > epoch) {
          // The slot already holds a later sub-window ("now" went backwards).
          ++dropped_old;
          continue;
        }
        if (ser.first_epoch == kNoEpoch || epoch > ser.last_epoch) {
          // A newer sub-window opens; the open one closes (when it is `s` itself, with a
          // single slot, reset_slot takes it out again).
          if (ser.first_epoch != kNoEpoch) close_slot(ser, ser.slots[ser.last_epoch % slots]);
          ser.last_epoch = epoch;
        }
        ser.first_epoch = std::min(ser.first_epoch, epoch);
        reset_slot(ser, s, epoch);
      }
      // Late events for a closed sub-window also go into the series' total.
      const bool to_closed = epoch != ser.last_epoch;

      const std::uint64_t v = e.duration;
      const BucketIndex b = bucket_of(v);
      std::uint32_t& id = s.chunk[b.chunk];
      if (SPYGLASS_UNLIKELY(id == 0)) {
        id = pool.alloc();
        s.mask |= std::uint64_t{1} << b.chunk;
        if (to_closed && (ser.total_mask >> b.chunk & 1) == 0) {
          ser.total[b.chunk] = wide.alloc();
          ser.total_mask |= std::uint64_t{1} << b.chunk;
        }
      }
      std::uint32_t& c = pool.at(id)[b.sub];
      const bool room = c != std::numeric_limits<std::uint32_t>::max();  // saturate, never wrap
      c += room;
      if (SPYGLASS_UNLIKELY(to_closed)) {
        wide.at(ser.total[b.chunk])[b.sub] += room;  // the total stays the sum of the slots
        ser.closed += (s.count == 0);
        ser.closed_lo = std::min(ser.closed_lo, epoch);
        ++ser.closed_count;
        ser.closed_errors += (e.status == Status::error);
        ser.closed_sum += static_cast<double>(v);
        ser.closed_max = std::max(ser.closed_max, v);
        ser.closed_min = std::min(ser.closed_min, v);
      }
      ++s.count;
      s.errors += (e.status == Status::error);
      s.max = std::max(s.max, v);
      s.min = std::min(s.min, v);
      s.sum += static_cast<double>(v);
    }
  }

  // Adds one slot's histogram into `merged`; `touched` marks the chunks written so far.
  // Fixed-length loops over plain arrays, which GCC vectorises at -O2.
  void merge_slot(const Slot& s, std::uint64_t* merged, std::uint64_t& touched) const noexcept {
    for (std::uint64_t left = s.mask; left != 0; left &= left - 1) {
      const auto c = static_cast<std::size_t>(std::countr_zero(left));
      const std::uint32_t* __restrict src = pool.at(s.chunk[c]).data();
      std::uint64_t* __restrict dst = merged + c * kSub;
      if (((touched >> c) & 1) == 0) {
        touched |= std::uint64_t{1} << c;
        for (std::size_t j = 0; j < kSub; ++j) dst[j] = src[j];
      } else {
        for (std::size_t j = 0; j < kSub; ++j) dst[j] += src[j];
      }
    }
  }

  // A chunk of the closed total and of the open slot, added as they are read; all zeros
  // stand in for a chunk either lacks.
  struct SumOfTwo {
    const std::uint64_t* wide;
    const std::uint32_t* narrow;
    std::uint64_t operator[](std::size_t j) const noexcept { return wide[j] + narrow[j]; }
  };
  static constexpr WideChunk kZeroWide{};
  static constexpr Chunk kZero{};

  // Takes one closed slot's histogram out of `merged`, a copy of the series' total.
  void subtract_slot(const Slot& s, std::uint64_t* merged) const noexcept {
    for (std::uint64_t left = s.mask; left != 0; left &= left - 1) {
      const auto c = static_cast<std::size_t>(std::countr_zero(left));
      const std::uint32_t* __restrict src = pool.at(s.chunk[c]).data();
      std::uint64_t* __restrict dst = merged + c * kSub;
      for (std::size_t j = 0; j < kSub; ++j) dst[j] -= src[j];
    }
  }

  // Nearest-rank percentiles of a histogram: the k-th smallest value, k = ceil(p * count),
  // from the chunks in `touched`; `chunk(c)` gives chunk c's kSub counters (one slot's
  // 32-bit ones, a series' total or a merge of several slots). The median is found from
  // the bottom, p90 and p99 from the top as the (count - k + 1)-th largest: each scan stops
  // at its last rank, so the buckets between the median and p90 are never read.
  template <class ChunkAt>
  static void percentiles(ChunkAt&& chunk, std::uint64_t touched, std::uint64_t count, std::uint64_t min,
                          std::uint64_t max, StatsEntry& entry) noexcept {
    __extension__ using u128 = unsigned __int128;
    const auto rank = [count](std::uint64_t permille) {
      return std::max<std::uint64_t>(
          static_cast<std::uint64_t>((static_cast<u128>(count) * permille + 999) / 1000), 1);
    };
    const auto value = [min, max](std::size_t c, std::size_t j) {
      return std::clamp(bucket_value(c, j), static_cast<double>(min), static_cast<double>(max));
    };
    // Saturated bucket counts can leave the total short of `count`: fall back to max.
    entry.p50_ns = entry.p90_ns = entry.p99_ns = static_cast<double>(max);
    scan_up(chunk, touched, rank(500), [&](std::size_t c, std::size_t j) { entry.p50_ns = value(c, j); });
    // p99 first: it is the nearer to the top.
    const std::uint64_t from_top[2] = {count - rank(990) + 1, count - rank(900) + 1};
    double* out[2] = {&entry.p99_ns, &entry.p90_ns};
    int q = 0;
    std::uint64_t seen = 0;
    // Groups of 8 buckets above the next rank are skipped on their sum.
    constexpr std::size_t kGroup = 8;
    for (std::uint64_t left = touched; left != 0 && q < 2;) {
      const auto c = static_cast<std::size_t>(63 - std::countl_zero(left));
      left &= ~(std::uint64_t{1} << c);
      const auto src = chunk(c);
      for (std::size_t g = kSub; g != 0 && q < 2; g -= kGroup) {
        std::uint64_t part = 0;
        for (std::size_t j = g - kGroup; j < g; ++j) part += src[j];
        if (seen + part < from_top[q]) {
          seen += part;
          continue;
        }
        for (std::size_t j = g; j != g - kGroup && q < 2; --j) {
          seen += src[j - 1];
          for (; q < 2 && seen >= from_top[q]; ++q) *out[q] = value(c, j - 1);
        }
      }
    }
  }

  // The bucket holding the k-th smallest value of the chunks in `touched`, given to
  // `found(chunk, bucket)`; nothing when the counts sum to less than k.
  template <class ChunkAt, class Found>
  static void scan_up(ChunkAt& chunk, std::uint64_t touched, std::uint64_t k, Found&& found) noexcept {
    std::uint64_t seen = 0;
    constexpr std::size_t kGroup = 8;  // groups below k are skipped on their sum
    for (std::uint64_t left = touched; left != 0; left &= left - 1) {
      const auto c = static_cast<std::size_t>(std::countr_zero(left));
      const auto src = chunk(c);
      for (std::size_t g = 0; g < kSub; g += kGroup) {
        std::uint64_t part = 0;
        for (std::size_t j = 0; j < kGroup; ++j) part += src[g + j];
        if (seen + part < k) {
          seen += part;
          continue;
        }
        for (std::size_t j = g;; ++j) {
          seen += src[j];
          if (seen >= k) return found(c, j);
        }
      }
    }
  }

  // The next entry of `snap` (reused when it has one), named after `ser`.
  static StatsEntry& next_entry(StatsSnapshot& snap, std::size_t& used, const Series& ser) {
    if (used == snap.entries.size()) snap.entries.emplace_back();
    StatsEntry& entry = snap.entries[used++];
    entry.kind = ser.kind;
    entry.name.assign(ser.name);
    return entry;
  }

  // Fills `snap`, reusing its entries and their names' storage.
  void snapshot(std::uint64_t now, StatsSnapshot& snap) const {
    const std::uint64_t slots = opt.slots;
    const std::uint64_t now_epoch = now / slot_ns;
    const std::uint64_t lo_epoch = now_epoch >= slots - 1 ? now_epoch - (slots - 1) : 0;

    snap.window_start_unix_ns = lo_epoch * slot_ns;
    snap.window_end_unix_ns = now;

    std::vector<std::uint64_t> merged;  // sized on first use: most series need no merge
    std::size_t used = 0;               // entries of `snap` written
    std::lock_guard<std::mutex> lock(m);
    snap.overflowed = overflowed;
    snap.dropped_old = dropped_old;
    snap.dropped_future = dropped_future;
    snap.entries.reserve(series.size());
    for (std::size_t k = 0; k < order.size(); ++k) {
      // The series and their chunks are scattered on the heap: fetch the headers three
      // series ahead, the newest slot two ahead, and the chunks the next one's
      // percentiles read (its newest slot's and its closed total's, whose ids the slot
      // and header fetched before hold) while this one is read.
      const auto fetch = [](const void* p, std::size_t bytes) {
        for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(static_cast<const char*>(p) + b);
      };
      if (k + 3 < order.size()) __builtin_prefetch(series[order[k + 3]].get());
      if (k + 2 < order.size()) {
        const Series& next = *series[order[k + 2]];
        if (next.first_epoch != kNoEpoch) fetch(&next.slots[next.last_epoch % slots], sizeof(Slot));
      }
      if (k + 1 < order.size()) {
        const Series& next = *series[order[k + 1]];
        if (next.first_epoch != kNoEpoch) {
          const Slot& s = next.slots[next.last_epoch % slots];
          for (std::uint64_t left = s.mask; left != 0; left &= left - 1)
            fetch(pool.at(s.chunk[static_cast<std::size_t>(std::countr_zero(left))]).data(), sizeof(Chunk));
          for (std::uint64_t left = next.total_mask; left != 0; left &= left - 1)
            fetch(wide.at(next.total[static_cast<std::size_t>(std::countr_zero(left))]).data(),
                  sizeof(WideChunk));
        }
      }
      const Series& ser = *series[order[k]];
      if (ser.first_epoch == kNoEpoch) continue;
      const Slot& open = ser.slots[ser.last_epoch % slots];
      const bool open_in = open.count != 0 && ser.last_epoch >= lo_epoch && ser.last_epoch <= now_epoch;
      std::uint64_t count = 0, errors = 0, max = 0, min = std::numeric_limits<std::uint64_t>::max();
      double sum = 0;
      std::size_t in = 0;           // slots with events inside the window
      const Slot* one = nullptr;    // the last of them read, when read one by one
      std::size_t runs[2][2] = {};  // the slot positions visited, when visited
      const auto add = [&](const Slot& s) {
        count += s.count;
        errors += s.errors;
        max = std::max(max, s.max);
        min = std::min(min, s.min);
        sum += s.sum;
        ++in;
        one = &s;
      };
      if (ser.last_epoch <= now_epoch && (ser.closed == 0 || ser.closed_lo >= lo_epoch)) {
        // The steady state, no sub-window after the window and every closed one inside it:
        // the series' running figures of the closed ones and the open slot, nothing else.
        count = ser.closed_count;
        errors = ser.closed_errors;
        max = ser.closed_max;
        min = ser.closed_min;
        sum = ser.closed_sum;
        in = ser.closed;
        if (open_in) add(open);
        if (ser.closed != 0) one = nullptr;  // the total holds the others' histogram
      } else {
        // Sub-windows both in the window and ever set: at most `slots` consecutive epochs,
        // so one run of positions or two when it wraps, visited in position order as the
        // sums below have always been added.
        const std::uint64_t from = std::max(lo_epoch, ser.first_epoch);
        const std::uint64_t to = std::min(now_epoch, ser.last_epoch);
        if (from > to) continue;
        const auto n = static_cast<std::size_t>(to - from + 1);
        const auto a = static_cast<std::size_t>(from % slots);
        const bool wraps = a + n > slots;
        runs[0][0] = wraps ? 0 : a;
        runs[0][1] = wraps ? a + n - slots : a + n;
        runs[1][0] = wraps ? a : 0;
        runs[1][1] = wraps ? slots : 0;
        for (const auto& run : runs) {
          for (std::size_t i = run[0]; i < run[1]; ++i) {
            const Slot& s = ser.slots[i];
            if (s.epoch == kNoEpoch || s.epoch < lo_epoch || s.epoch > now_epoch || s.count == 0) continue;
            add(s);
          }
        }
      }
      if (count == 0) continue;

      StatsEntry& entry = next_entry(snap, used, ser);
      entry.count = count;
      entry.errors = errors;
      entry.max_ns = static_cast<double>(max);
      entry.mean_ns = sum / static_cast<double>(count);
      // The histogram of the window, read from as few chunks as possible: one slot's own;
      // the closed sub-windows' total (plus the open one) when every closed one is inside
      // the window, the steady state; that less the few closed ones outside it; or else
      // the merge of the slots inside.
      const std::size_t out = ser.closed - (in - open_in);  // closed slots outside the window
      if (in == 1 && one != nullptr) {
        percentiles([&](std::size_t c) { return pool.at(one->chunk[c]).data(); }, one->mask, count, min, max,
                    entry);
      } else if (out == 0 && !open_in) {
        percentiles([&](std::size_t c) { return wide.at(ser.total[c]).data(); }, ser.total_mask, count, min,
                    max, entry);
      } else if (out == 0) {
        percentiles(
            [&](std::size_t c) {
              return SumOfTwo{ser.total[c] != 0 ? wide.at(ser.total[c]).data() : kZeroWide.data(),
                              open.chunk[c] != 0 ? pool.at(open.chunk[c]).data() : kZero.data()};
            },
            ser.total_mask | open.mask, count, min, max, entry);
      } else if (out + 1 < in) {
        merged.resize(kChunks * kSub);
        std::uint64_t touched = ser.total_mask;
        for (std::uint64_t left = touched; left != 0; left &= left - 1) {
          const auto c = static_cast<std::size_t>(std::countr_zero(left));
          std::memcpy(merged.data() + c * kSub, wide.at(ser.total[c]).data(), sizeof(WideChunk));
        }
        if (open_in) merge_slot(open, merged.data(), touched);
        // The closed slots outside the window lie outside the runs visited above.
        std::size_t left_out = out;
        for (std::size_t i = 0; i < slots && left_out != 0; ++i) {
          const Slot& s = ser.slots[i];
          if (s.count == 0 || (s.epoch >= lo_epoch && s.epoch <= now_epoch) || &s == &open) continue;
          subtract_slot(s, merged.data());
          --left_out;
        }
        percentiles([&](std::size_t c) { return merged.data() + c * kSub; }, touched, count, min, max, entry);
      } else {
        merged.resize(kChunks * kSub);
        std::uint64_t touched = 0;
        for (const auto& run : runs) {
          for (std::size_t i = run[0]; i < run[1]; ++i) {
            const Slot& s = ser.slots[i];
            if (s.epoch == kNoEpoch || s.epoch < lo_epoch || s.epoch > now_epoch || s.count == 0) continue;
            merge_slot(s, merged.data(), touched);
          }
        }
        percentiles([&](std::size_t c) { return merged.data() + c * kSub; }, touched, count, min, max, entry);
      }
    }
    snap.entries.resize(used);
  }

  std::size_t memory_bytes() const {
    std::lock_guard<std::mutex> lock(m);
    std::size_t bytes = sizeof(StatsImpl);
    for (const auto& s : series) {
      bytes += sizeof(Series) + s->name.capacity() + opt.slots * sizeof(Slot);
    }
    bytes += series.capacity() * sizeof(void*) + order.capacity() * sizeof(std::uint32_t);
    for (const auto& [key, idx] : by_text) {
      (void)idx;
      // Node, key text and bucket pointer; libstdc++ keeps short keys inline.
      bytes += sizeof(std::pair<const std::string, std::uint32_t>) + 2 * sizeof(void*) + key.capacity();
    }
    bytes += cache.capacity() * sizeof(PtrEntry);
    bytes += pool.bytes() + wide.bytes();
    return bytes;
  }

  void clear() {
    std::lock_guard<std::mutex> lock(m);
    series.clear();
    order.clear();
    by_text.clear();
    named = 0;
    reset_cache(64);
    pool.clear();
    wide.clear();
    overflowed = 0;
    dropped_old = 0;
    dropped_future = 0;
  }
};

}  // namespace detail

StatsStore::StatsStore(StatsOptions options) : impl_(std::make_unique<detail::StatsImpl>(options)) {}
StatsStore::~StatsStore() = default;

void StatsStore::record(std::span<const Event> events) { impl_->record(events, clock::realtime_ns()); }

void StatsStore::record(const Event& e) {
  impl_->record(std::span<const Event>(&e, 1), clock::realtime_ns());
}

void StatsStore::record(std::span<const Event> events, std::uint64_t now_unix_ns) {
  impl_->record(events, now_unix_ns);
}

StatsSnapshot StatsStore::snapshot() const { return snapshot(clock::realtime_ns()); }

StatsSnapshot StatsStore::snapshot(std::uint64_t now_unix_ns) const {
  StatsSnapshot snap;
  impl_->snapshot(now_unix_ns, snap);
  return snap;
}

void StatsStore::snapshot(StatsSnapshot& out) const { impl_->snapshot(clock::realtime_ns(), out); }

void StatsStore::snapshot(StatsSnapshot& out, std::uint64_t now_unix_ns) const {
  impl_->snapshot(now_unix_ns, out);
}

std::string StatsStore::to_json() const { return spyglass::to_json(snapshot()); }

std::size_t StatsStore::memory_bytes() const { return impl_->memory_bytes(); }

void StatsStore::clear() { impl_->clear(); }

namespace detail {
void stats_lock_for_fork(StatsStore& store) noexcept { store.impl_->m.lock(); }
void stats_unlock_after_fork(StatsStore& store, bool child) noexcept {
  store.impl_->m.unlock();
  if (child) store.impl_->clear();
}
}  // namespace detail

const StatsOptions& StatsStore::options() const noexcept { return impl_->opt; }

std::string to_json(const StatsSnapshot& snap) {
  std::string out;
  out.reserve(96 + snap.entries.size() * 160);
  JsonWriter w(out);
  w.begin_object();
  w.key("window_start");
  w.value(snap.window_start_unix_ns);
  w.key("window_end");
  w.value(snap.window_end_unix_ns);
  w.key("entries");
  w.begin_array();
  for (const auto& e : snap.entries) {
    w.begin_object();
    w.key("kind");
    w.value(to_string(e.kind));
    w.key("name");
    w.value(std::string_view(e.name));
    w.key("count");
    w.value(e.count);
    w.key("errors");
    w.value(e.errors);
    w.key("p50_ns");
    w.value(e.p50_ns);
    w.key("p90_ns");
    w.value(e.p90_ns);
    w.key("p99_ns");
    w.value(e.p99_ns);
    w.key("max_ns");
    w.value(e.max_ns);
    w.key("mean_ns");
    w.value(e.mean_ns);
    w.end_object();
  }
  w.end_array();
  w.key("overflowed");
  w.value(snap.overflowed);
  w.key("dropped_old");
  w.value(snap.dropped_old);
  w.key("dropped_future");
  w.value(snap.dropped_future);
  w.end_object();
  return out;
}

}  // namespace SPYGLASS_NAMESPACE
