// StatsStore: percentiles against exact ones, rolling-window expiry on synthetic time,
// out-of-range timestamps, name overflow, pointer/text identity, concurrency, JSON.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "spyglass/stats.hpp"

namespace sg = spyglass;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kSec = 1'000'000'000ULL;
// A synthetic "now", aligned to every sub-window size used below.
constexpr std::uint64_t kBase = 1'700'000'000ULL * kSec;

sg::Event ev(const char* name, std::uint64_t start, std::uint64_t duration,
             sg::EventKind kind = sg::EventKind::function, sg::Status status = sg::Status::ok) {
  sg::Event e;
  e.name = name;
  e.start = start;
  e.duration = duration;
  e.kind = kind;
  e.status = status;
  return e;
}

// Nearest-rank percentile of a sorted sample: the ceil(p * n)-th smallest value.
double exact_percentile(const std::vector<std::uint64_t>& sorted, int permille) {
  const std::size_t n = sorted.size();
  std::size_t k = (n * static_cast<std::size_t>(permille) + 999) / 1000;
  k = std::max<std::size_t>(k, 1);
  return static_cast<double>(sorted[k - 1]);
}

const sg::StatsEntry* find(const sg::StatsSnapshot& s, std::string_view name,
                           sg::EventKind kind = sg::EventKind::function) {
  for (const auto& e : s.entries)
    if (e.name == name && e.kind == kind) return &e;
  return nullptr;
}

void expect_rel(double actual, double expected, double rel, const char* what) {
  EXPECT_LE(std::abs(actual - expected), rel * expected)
      << what << ": got " << actual << ", exact " << expected;
}

// Records `values` under one name in one sub-window and checks every aggregate.
void check_distribution(const std::vector<std::uint64_t>& values) {
  sg::StatsStore store;
  std::vector<sg::Event> batch;
  batch.reserve(values.size());
  std::uint64_t errors = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const bool err = i % 7 == 3;
    errors += err;
    batch.push_back(ev("dist", kBase + i % 1000, values[i], sg::EventKind::request,
                       err ? sg::Status::error : sg::Status::ok));
  }
  // Several record() calls, as the collector makes them.
  const std::span<const sg::Event> all(batch);
  for (std::size_t off = 0; off < all.size(); off += 4096) {
    store.record(all.subspan(off, std::min<std::size_t>(4096, all.size() - off)), kBase + kSec);
  }

  std::vector<std::uint64_t> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  double sum = 0;
  for (auto v : values) sum += static_cast<double>(v);

  const auto snap = store.snapshot(kBase + 2 * kSec);
  ASSERT_EQ(snap.entries.size(), 1u);
  const auto& e = snap.entries[0];
  EXPECT_EQ(e.kind, sg::EventKind::request);
  EXPECT_EQ(e.count, values.size());
  EXPECT_EQ(e.errors, errors);
  expect_rel(e.p50_ns, exact_percentile(sorted, 500), 0.01, "p50");
  expect_rel(e.p90_ns, exact_percentile(sorted, 900), 0.01, "p90");
  expect_rel(e.p99_ns, exact_percentile(sorted, 990), 0.01, "p99");
  EXPECT_EQ(e.max_ns, static_cast<double>(sorted.back()));
  expect_rel(e.mean_ns, sum / static_cast<double>(values.size()), 1e-9, "mean");
  EXPECT_LE(e.p50_ns, e.p90_ns);
  EXPECT_LE(e.p90_ns, e.p99_ns);
  EXPECT_LE(e.p99_ns, e.max_ns);
  const sg::LatencySummary sum_of_entry = e.summary();
  EXPECT_EQ(sum_of_entry.count, e.count);
  EXPECT_EQ(sum_of_entry.errors, e.errors);
  EXPECT_EQ(sum_of_entry.p90_ns, e.p90_ns);
  EXPECT_EQ(sum_of_entry.mean_ns, e.mean_ns);
}

}  // namespace

TEST(StatsPercentiles, UniformWithinOnePercent) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<std::uint64_t> d(1'000, 10'000'000);
  std::vector<std::uint64_t> v(200'000);
  for (auto& x : v) x = d(rng);
  check_distribution(v);
}

TEST(StatsPercentiles, LognormalWithinOnePercent) {
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> d(std::log(200'000.0), 1.5);
  std::vector<std::uint64_t> v(200'000);
  for (auto& x : v) x = static_cast<std::uint64_t>(std::max(1.0, d(rng)));
  check_distribution(v);
}

TEST(StatsPercentiles, BimodalWithinOnePercent) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> fast(50'000.0, 5'000.0);  // cache hits
  std::normal_distribution<double> slow(8'000'000.0, 1e6);   // misses
  std::bernoulli_distribution is_slow(0.05);
  std::vector<std::uint64_t> v(200'000);
  for (auto& x : v) x = static_cast<std::uint64_t>(std::max(1.0, is_slow(rng) ? slow(rng) : fast(rng)));
  check_distribution(v);
}

TEST(StatsPercentiles, WideRangeFromNanosecondsToAnHour) {
  // Log-uniform over 1 ns .. 1 hour: every power of two of the range is exercised.
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<double> d(0.0, std::log(3600.0 * 1e9));
  std::vector<std::uint64_t> v(100'000);
  for (auto& x : v) x = static_cast<std::uint64_t>(std::exp(d(rng)));
  v.push_back(3'600ULL * kSec);  // exactly one hour
  check_distribution(v);
}

TEST(StatsPercentiles, SmallValuesAreExact) {
  sg::StatsStore store;
  std::vector<sg::Event> batch;
  for (std::uint64_t i = 1; i <= 50; ++i) batch.push_back(ev("small", kBase, i));
  store.record(batch, kBase);
  const auto snap = store.snapshot(kBase);
  ASSERT_EQ(snap.entries.size(), 1u);
  EXPECT_EQ(snap.entries[0].p50_ns, 25.0);
  EXPECT_EQ(snap.entries[0].p90_ns, 45.0);
  EXPECT_EQ(snap.entries[0].p99_ns, 50.0);
  EXPECT_EQ(snap.entries[0].max_ns, 50.0);
  EXPECT_EQ(snap.entries[0].mean_ns, 25.5);
}

TEST(StatsPercentiles, HugeValuesKeepAnExactMax) {
  sg::StatsStore store;
  const std::uint64_t huge = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t day = 86'400ULL * kSec;  // beyond the resolved range (2^44 ns)
  const sg::Event batch[] = {ev("big", kBase, 0), ev("big", kBase, day), ev("big", kBase, huge)};
  store.record(batch, kBase);
  const auto snap = store.snapshot(kBase);
  ASSERT_EQ(snap.entries.size(), 1u);
  const auto& e = snap.entries[0];
  EXPECT_EQ(e.count, 3u);
  EXPECT_EQ(e.max_ns, static_cast<double>(huge));
  EXPECT_GE(e.p50_ns, static_cast<double>(std::uint64_t{1} << 43));  // top bucket, not wrapped
  EXPECT_LE(e.p99_ns, e.max_ns);
  EXPECT_GE(e.p99_ns, e.p50_ns);
}

TEST(StatsWindow, SubWindowsExpireOnSyntheticTime) {
  // 60 s window in six 10 s sub-windows.
  sg::StatsStore store({.window = 60s, .slots = 6});
  std::vector<sg::Event> first, second;
  for (int i = 0; i < 10; ++i) first.push_back(ev("op", kBase + 1 * kSec, 1'000));
  for (int i = 0; i < 5; ++i) second.push_back(ev("op", kBase + 35 * kSec, 9'000));
  store.record(first, kBase + 1 * kSec);
  store.record(second, kBase + 35 * kSec);

  auto at = [&](std::uint64_t now) {
    const auto s = store.snapshot(now);
    const auto* e = find(s, "op");
    return e == nullptr ? std::uint64_t{0} : e->count;
  };
  EXPECT_EQ(at(kBase + 35 * kSec), 15u);
  EXPECT_EQ(at(kBase + 59 * kSec), 15u);  // the first sub-window is still inside
  EXPECT_EQ(at(kBase + 60 * kSec), 5u);   // ...and now it is not
  EXPECT_EQ(at(kBase + 89 * kSec), 5u);
  EXPECT_EQ(at(kBase + 90 * kSec), 0u);
  EXPECT_TRUE(store.snapshot(kBase + 90 * kSec).entries.empty());
  // A "now" before the later events leaves them out.
  EXPECT_EQ(at(kBase + 20 * kSec), 10u);

  const auto s = store.snapshot(kBase + 60 * kSec + 123);
  EXPECT_EQ(s.window_start_unix_ns, kBase + 10 * kSec);
  EXPECT_EQ(s.window_end_unix_ns, kBase + 60 * kSec + 123);
  const auto* e = find(s, "op");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->max_ns, 9'000.0);  // the expired sub-window's max is gone too
}

TEST(StatsWindow, ReusedSlotForgetsItsPreviousSubWindow) {
  sg::StatsStore store({.window = 60s, .slots = 6});
  std::vector<sg::Event> old_batch, new_batch;
  for (int i = 0; i < 100; ++i) old_batch.push_back(ev("op", kBase + 2 * kSec, 5'000'000));
  for (int i = 0; i < 100; ++i) new_batch.push_back(ev("op", kBase + 62 * kSec, 1'000));
  store.record(old_batch, kBase + 2 * kSec);
  store.record(new_batch, kBase + 62 * kSec);  // same slot position, one window later
  const auto s = store.snapshot(kBase + 62 * kSec);
  const auto* e = find(s, "op");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->count, 100u);
  EXPECT_EQ(e->max_ns, 1'000.0);
  expect_rel(e->p99_ns, 1'000.0, 0.01, "p99");
  EXPECT_EQ(s.dropped_old, 0u);
}

TEST(StatsWindow, OldAndFarFutureEventsAreCountedNotStored) {
  sg::StatsStore store({.window = 60s, .slots = 6, .future_tolerance = 30s});
  const std::uint64_t now = kBase + 100 * kSec;
  const sg::Event batch[] = {
      ev("op", now - 61 * kSec, 1),                            // older than the window
      ev("op", 0, 1),                                          // the epoch itself
      ev("op", now + 31 * kSec, 1),                            // beyond the tolerance
      ev("op", std::numeric_limits<std::uint64_t>::max(), 1),  // absurd
      ev("op", now + 10 * kSec, 7),                            // ahead, within tolerance
      ev("op", now - 5 * kSec, 3),                             // ordinary
  };
  store.record(batch, now);
  const auto s = store.snapshot(now);
  EXPECT_EQ(s.dropped_old, 2u);
  EXPECT_EQ(s.dropped_future, 2u);
  const auto* e = find(s, "op");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->count, 2u);  // the near-future one is clamped into the current sub-window
  EXPECT_EQ(e->max_ns, 7.0);

  // The rejected events did not move time: ordinary events right after still count.
  const sg::Event later[] = {ev("op", now + 1 * kSec, 5)};
  store.record(later, now + 1 * kSec);
  EXPECT_EQ(find(store.snapshot(now + 1 * kSec), "op")->count, 3u);
}

TEST(StatsWindow, NowGoingBackwardsDoesNotMixSubWindows) {
  sg::StatsStore store({.window = 60s, .slots = 6});
  const sg::Event late[] = {ev("op", kBase + 65 * kSec, 2)};
  store.record(late, kBase + 65 * kSec);
  // Same slot position one window earlier, with a "now" that makes it look current.
  const sg::Event early[] = {ev("op", kBase + 5 * kSec, 1)};
  store.record(early, kBase + 5 * kSec);
  const auto s = store.snapshot(kBase + 65 * kSec);
  EXPECT_EQ(find(s, "op")->count, 1u);
  EXPECT_EQ(s.dropped_old, 1u);
}

// The reported value of a sample, worked out from the documented bucket layout: below
// 64 ns the value itself; above, the midpoint of its 1/64 slice of its power of two.
double bucket_midpoint(std::uint64_t v) {
  if (v < 64) return static_cast<double>(v);
  const int e = 63 - std::countl_zero(v);
  const std::uint64_t width = std::uint64_t{1} << (e - 6);
  const std::uint64_t lo = v / width * width;
  return static_cast<double>(lo) + static_cast<double>(width - 1) / 2.0;
}

TEST(StatsWindow, ManyNamesOverRotatingSubWindowsMatchASortedReference) {
  // 120 names of three kinds created in shuffled order, events over 2.5 windows of
  // 15 sub-windows of 4 s, snapshots taken as the ring wraps, and before and after the
  // last events recorded: each entry must equal the
  // nearest-rank percentile of the sorted values kept in the window, reported as the
  // midpoint of its bucket clamped to the min and max.
  constexpr std::uint64_t kSlot = 4 * kSec;
  sg::StatsStore store({.window = 60s, .slots = 15});
  struct Ref {
    std::string name;
    sg::EventKind kind;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> events;  // (start, duration)
    std::vector<bool> error;
  };
  std::vector<Ref> refs;
  const sg::EventKind kinds[] = {sg::EventKind::request, sg::EventKind::function, sg::EventKind::db};
  for (int i = 0; i < 120; ++i)
    refs.push_back({"op." + std::to_string(i * 7919 % 1000), kinds[i % 3], {}, {}});
  std::mt19937_64 rng(11);
  std::shuffle(refs.begin(), refs.end(), rng);
  std::lognormal_distribution<double> dur(std::log(50'000.0), 2.5);

  std::vector<sg::Event> batch;
  for (std::uint64_t step = 0; step < 38; ++step) {
    const std::uint64_t now = kBase + step * kSlot;
    batch.clear();
    for (std::size_t r = 0; r < refs.size(); ++r) {
      // Some names go quiet for a while, some only start late, so series differ in which
      // sub-windows they hold.
      if ((r + step / 5) % 4 == 0 || (r % 5 == 0 && step < 20)) continue;
      const std::size_t n = rng() % 12;
      for (std::size_t k = 0; k < n; ++k) {
        const std::uint64_t start = now - rng() % (2 * kSlot);  // this or the previous sub-window
        const auto d = static_cast<std::uint64_t>(std::min(1e13, std::max(0.0, dur(rng))));
        const bool err = rng() % 10 == 0;
        refs[r].events.emplace_back(start, d);
        refs[r].error.push_back(err);
        batch.push_back(
            ev(refs[r].name.c_str(), start, d, refs[r].kind, err ? sg::Status::error : sg::Status::ok));
      }
    }
    store.record(batch, now);
    if (step % 3 != 0) continue;

    // At "now", and also as the window slides on with no new events (sub-windows expire
    // without being overwritten) and back (later sub-windows are left out).
    const std::uint64_t ats[] = {now,
                                 now + kSlot,
                                 now + 3 * kSlot,
                                 now + 7 * kSlot,
                                 now + 14 * kSlot,
                                 now - 2 * kSlot,
                                 now - 9 * kSlot};
    for (const std::uint64_t at : ats) {
      const auto snap = store.snapshot(at);
      const std::uint64_t at_epoch = at / kSlot, lo_epoch = at_epoch - 14;
      std::vector<std::pair<sg::EventKind, std::string>> expected_order;
      for (const Ref& ref : refs) {
        // A sub-window position holds the newest sub-window the series had events in.
        std::uint64_t newest[15] = {};
        for (const auto& [start, d] : ref.events) {
          (void)d;
          newest[start / kSlot % 15] = std::max(newest[start / kSlot % 15], start / kSlot);
        }
        std::vector<std::uint64_t> kept;
        std::uint64_t errors = 0;
        double sum = 0;
        for (std::size_t k = 0; k < ref.events.size(); ++k) {
          const std::uint64_t epoch = ref.events[k].first / kSlot;
          if (epoch < lo_epoch || epoch > at_epoch || newest[epoch % 15] != epoch) continue;
          kept.push_back(ref.events[k].second);
          errors += ref.error[k];
          sum += static_cast<double>(ref.events[k].second);
        }
        const auto* e = find(snap, ref.name, ref.kind);
        if (kept.empty()) {
          EXPECT_EQ(e, nullptr) << ref.name;
          continue;
        }
        expected_order.emplace_back(ref.kind, ref.name);
        ASSERT_NE(e, nullptr) << ref.name << " at step " << step;
        std::sort(kept.begin(), kept.end());
        EXPECT_EQ(e->count, kept.size());
        EXPECT_EQ(e->errors, errors);
        EXPECT_EQ(e->max_ns, static_cast<double>(kept.back()));
        expect_rel(e->mean_ns, sum / static_cast<double>(kept.size()), 1e-12, "mean");
        const double lo_v = static_cast<double>(kept.front()), hi_v = static_cast<double>(kept.back());
        const int permille[] = {500, 900, 990};
        const double got[] = {e->p50_ns, e->p90_ns, e->p99_ns};
        for (int q = 0; q < 3; ++q) {
          const double exact = exact_percentile(kept, permille[q]);
          const double want = std::clamp(bucket_midpoint(static_cast<std::uint64_t>(exact)), lo_v, hi_v);
          EXPECT_EQ(got[q], want) << ref.name << " p" << permille[q] / 10 << " at step " << step
                                  << ", snapshot "
                                  << static_cast<std::int64_t>(at - now) / static_cast<std::int64_t>(kSlot);
        }
      }
      // Listed by kind, then name.
      std::sort(expected_order.begin(), expected_order.end());
      ASSERT_EQ(snap.entries.size(), expected_order.size());
      for (std::size_t i = 0; i < expected_order.size(); ++i) {
        EXPECT_EQ(snap.entries[i].kind, expected_order[i].first);
        EXPECT_EQ(snap.entries[i].name, expected_order[i].second);
      }
    }
  }
}

TEST(StatsStore, ErrorsAreCountedPerSeries) {
  sg::StatsStore store;
  std::vector<sg::Event> batch;
  for (int i = 0; i < 40; ++i)
    batch.push_back(ev("a", kBase, 10, sg::EventKind::db, i % 4 == 0 ? sg::Status::error : sg::Status::ok));
  for (int i = 0; i < 10; ++i) batch.push_back(ev("b", kBase, 10, sg::EventKind::db, sg::Status::error));
  batch.push_back(ev("c", kBase, 10, sg::EventKind::db));
  store.record(batch, kBase);
  const auto s = store.snapshot(kBase);
  EXPECT_EQ(find(s, "a", sg::EventKind::db)->errors, 10u);
  EXPECT_EQ(find(s, "b", sg::EventKind::db)->errors, 10u);
  EXPECT_EQ(find(s, "c", sg::EventKind::db)->errors, 0u);
}

TEST(StatsStore, SameTextThroughDifferentPointersIsOneSeries) {
  sg::StatsStore store;
  std::string a = "GET /orders";
  std::vector<char> b(a.begin(), a.end());
  b.push_back('\0');
  char c[32];
  std::strcpy(c, a.c_str());
  ASSERT_NE(static_cast<const void*>(a.c_str()), static_cast<const void*>(b.data()));
  const sg::Event batch[] = {
      ev(a.c_str(), kBase, 1, sg::EventKind::request),
      ev(b.data(), kBase, 2, sg::EventKind::request),
      ev(c, kBase, 3, sg::EventKind::request),
      ev("GET /orders", kBase, 4, sg::EventKind::request),
      ev("GET /orders", kBase, 5, sg::EventKind::function),  // same text, other kind: other series
  };
  store.record(batch, kBase);
  const sg::Event again[] = {ev(c, kBase, 6, sg::EventKind::request)};
  store.record(again, kBase);  // through the pointer cache this time
  const auto s = store.snapshot(kBase);
  ASSERT_EQ(s.entries.size(), 2u);
  EXPECT_EQ(find(s, "GET /orders", sg::EventKind::request)->count, 5u);
  EXPECT_EQ(find(s, "GET /orders", sg::EventKind::function)->count, 1u);
  // Sorted by kind (request < function), then name.
  EXPECT_EQ(s.entries[0].kind, sg::EventKind::request);
}

TEST(StatsStore, ClientCallsAreTheirOwnKind) {
  sg::StatsStore store;
  const sg::Event batch[] = {
      ev("/users/{id}", kBase, 10, sg::EventKind::client),
      ev("/users/{id}", kBase, 20, sg::EventKind::client, sg::Status::error),
      ev("/users/{id}", kBase, 30, sg::EventKind::request),  // the same route served: another series
  };
  store.record(batch, kBase);
  const auto s = store.snapshot(kBase);
  ASSERT_EQ(s.entries.size(), 2u);
  EXPECT_EQ(find(s, "/users/{id}", sg::EventKind::client)->count, 2u);
  EXPECT_EQ(find(s, "/users/{id}", sg::EventKind::client)->errors, 1u);
  EXPECT_EQ(find(s, "/users/{id}", sg::EventKind::request)->count, 1u);
  EXPECT_EQ(s.entries[1].kind, sg::EventKind::client);  // sorted by kind: client last
  EXPECT_NE(sg::to_json(s).find(R"("kind":"client","name":"/users/{id}")"), std::string::npos)
      << sg::to_json(s);
}

TEST(StatsStore, NullNameIsTheEmptyName) {
  sg::StatsStore store;
  sg::Event e = ev("x", kBase, 1);
  e.name = nullptr;
  store.record(std::span<const sg::Event>(&e, 1), kBase);
  const auto s = store.snapshot(kBase);
  ASSERT_EQ(s.entries.size(), 1u);
  EXPECT_EQ(s.entries[0].name, "");
}

TEST(StatsStore, NamesBeyondTheLimitGoToOther) {
  sg::StatsStore store({.max_names = 3});
  std::vector<std::string> names;
  for (int i = 0; i < 6; ++i) names.push_back("fn" + std::to_string(i));
  std::vector<sg::Event> batch;
  for (int round = 0; round < 2; ++round)
    for (const auto& n : names) batch.push_back(ev(n.c_str(), kBase, 100));
  batch.push_back(ev("q", kBase, 100, sg::EventKind::db));  // a new name of another kind: also full
  store.record(batch, kBase);
  const auto s = store.snapshot(kBase);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(find(s, names[static_cast<std::size_t>(i)])->count, 2u);
  for (int i = 3; i < 6; ++i) EXPECT_EQ(find(s, names[static_cast<std::size_t>(i)]), nullptr);
  ASSERT_NE(find(s, sg::kStatsOtherName), nullptr);
  EXPECT_EQ(find(s, sg::kStatsOtherName)->count, 6u);
  EXPECT_EQ(find(s, sg::kStatsOtherName, sg::EventKind::db)->count, 1u);
  EXPECT_EQ(s.overflowed, 7u);
  EXPECT_EQ(s.entries.size(), 5u);
}

TEST(StatsStore, ManyDistinctPointersForOverflowingNamesStayBounded) {
  // Dynamic names beyond the limit arrive through ever new pointers: the pointer cache
  // must not grow with them.
  sg::StatsStore store({.max_names = 8});
  std::vector<std::string> names;
  for (int i = 0; i < 50'000; ++i) names.push_back("dyn" + std::to_string(i));
  std::vector<sg::Event> batch;
  for (const auto& n : names) batch.push_back(ev(n.c_str(), kBase, 10));
  store.record(batch, kBase);
  const auto s = store.snapshot(kBase);
  EXPECT_EQ(s.entries.size(), 9u);
  EXPECT_EQ(find(s, sg::kStatsOtherName)->count, 50'000u - 8u);
  EXPECT_LT(store.memory_bytes(), 1u << 20);
}

TEST(StatsStore, MemoryPerSeriesStaysSmallAndChunksAreRecycled) {
  sg::StatsStore store;  // 15 min in 15 slots
  std::vector<std::string> names;
  for (int i = 0; i < 4096; ++i) names.push_back("series." + std::to_string(i));
  std::vector<sg::Event> batch;
  auto one_minute = [&](std::uint64_t minute) {
    batch.clear();
    const std::uint64_t t = kBase + minute * 60 * kSec;
    // 250, 500, 750 and 1000 us: three powers of two, so three chunks per slot.
    for (const auto& n : names)
      for (std::uint64_t k = 1; k <= 4; ++k) batch.push_back(ev(n.c_str(), t, k * 250'000 + minute));
    store.record(batch, t);
  };
  for (std::uint64_t m = 0; m < 15; ++m) one_minute(m);
  const std::size_t full = store.memory_bytes();
  // 4096 series x 15 slots, each slot holding three 256-byte chunks plus its fixed 216
  // bytes, and per series ~1 KiB for its name, map entry and cache slots and three
  // 512-byte chunks of its running total: far below a dense 10 KiB histogram per slot
  // (600 MiB).
  EXPECT_LT(full, std::size_t{4096} * (1024 + 3 * 512 + 15 * (216 + 3 * 256)));
  one_minute(15);  // the first rotation sizes the free list
  const std::size_t rotating = store.memory_bytes();
  EXPECT_LT(rotating - full, std::size_t{1024});
  for (std::uint64_t m = 16; m < 45; ++m) one_minute(m);
  EXPECT_EQ(store.memory_bytes(), rotating);  // expired chunks were reused, nothing grew
  const auto s = store.snapshot(kBase + 44 * 60 * kSec);
  ASSERT_EQ(s.entries.size(), 4096u);
  EXPECT_EQ(s.entries[0].count, 15u * 4u);
}

TEST(StatsStore, ClearForgetsEverything) {
  sg::StatsStore store({.max_names = 1});
  const sg::Event batch[] = {ev("a", kBase, 1), ev("b", kBase, 1), ev("a", 0, 1)};
  store.record(batch, kBase);
  store.clear();
  const auto s = store.snapshot(kBase);
  EXPECT_TRUE(s.entries.empty());
  EXPECT_EQ(s.overflowed, 0u);
  EXPECT_EQ(s.dropped_old, 0u);
  const sg::Event again[] = {ev("b", kBase, 1)};
  store.record(again, kBase);
  EXPECT_EQ(find(store.snapshot(kBase), "b")->count, 1u);  // the name limit was reset too
}

TEST(StatsStore, OutOfRangeOptionsAreClamped) {
  sg::StatsStore store({.window = 0s, .slots = 0, .future_tolerance = -5s});
  EXPECT_EQ(store.options().window, 1s);
  EXPECT_EQ(store.options().slots, 1u);
  EXPECT_EQ(store.options().future_tolerance, 0s);
  sg::StatsStore many({.window = 10s, .slots = 1'000'000});
  EXPECT_EQ(many.options().slots, 3600u);
  sg::StatsStore huge({.window = std::chrono::seconds(std::numeric_limits<std::int64_t>::max()),
                       .future_tolerance = std::chrono::seconds(std::numeric_limits<std::int64_t>::max())});
  EXPECT_EQ(huge.options().window, std::chrono::hours(24 * 366));
  EXPECT_EQ(huge.options().future_tolerance, std::chrono::hours(24 * 366));
  const sg::Event old_one[] = {ev("h", kBase - 300 * 86'400 * kSec, 1), ev("h", kBase, 2)};
  huge.record(old_one, kBase);
  EXPECT_EQ(find(huge.snapshot(kBase), "h")->count, 2u);  // 300 days back is inside the window
  // Still usable.
  const sg::Event batch[] = {ev("a", kBase, 1)};
  store.record(batch, kBase);
  EXPECT_EQ(find(store.snapshot(kBase), "a")->count, 1u);
}

TEST(StatsStore, RealClockOverloads) {
  sg::StatsStore store;
  const auto now = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count());
  store.record(ev("live", now, 42));
  const sg::Event batch[] = {ev("live", now, 43)};
  store.record(batch);
  const auto s = store.snapshot();
  ASSERT_NE(find(s, "live"), nullptr);
  EXPECT_EQ(find(s, "live")->count, 2u);
  EXPECT_GE(s.window_end_unix_ns, now);
}

TEST(StatsConcurrency, SnapshotsWhileRecording) {
  sg::StatsStore store({.window = 60s, .slots = 6});
  constexpr int kBatches = 400;
  constexpr int kPerBatch = 256;
  const char* names[] = {"alpha", "beta", "gamma", "delta"};
  std::atomic<bool> done{false};
  std::atomic<int> snapshots{0};
  std::atomic<bool> monotonic{true};

  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      std::uint64_t last = 0;
      while (!done.load(std::memory_order_acquire)) {
        const auto s = store.snapshot(kBase + 30 * kSec);
        std::uint64_t total = 0;
        for (const auto& e : s.entries) total += e.count;
        if (total < last) monotonic = false;
        last = total;
        (void)sg::to_json(s);
        (void)store.memory_bytes();
        snapshots.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::thread writer([&] {
    std::vector<sg::Event> batch(kPerBatch);
    for (int b = 0; b < kBatches; ++b) {
      for (int i = 0; i < kPerBatch; ++i) {
        const auto n = static_cast<std::uint64_t>(b * kPerBatch + i);
        batch[static_cast<std::size_t>(i)] =
            ev(names[n % 4], kBase + (n % 30) * kSec, 1'000 + n % 100'000, sg::EventKind::function,
               n % 10 == 0 ? sg::Status::error : sg::Status::ok);
      }
      store.record(batch, kBase + 30 * kSec);
    }
  });
  writer.join();
  // Let the readers see the final state at least once.
  const int seen = snapshots.load();
  while (snapshots.load() < seen + 2) std::this_thread::yield();
  done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();

  EXPECT_TRUE(monotonic.load());
  const auto s = store.snapshot(kBase + 30 * kSec);
  std::uint64_t total = 0, errors = 0;
  for (const auto& e : s.entries) {
    total += e.count;
    errors += e.errors;
  }
  EXPECT_EQ(total, std::uint64_t{kBatches} * kPerBatch);
  EXPECT_EQ(errors, std::uint64_t{kBatches} * kPerBatch / 10);
  EXPECT_EQ(s.entries.size(), 4u);
}

TEST(StatsJson, ParsesAndCarriesTheValues) {
  sg::StatsStore store({.max_names = 3});
  const char* weird = "SELECT \"x\" FROM t\nWHERE a = '\\' \x01 \xC3\xA9";
  std::vector<sg::Event> batch;
  for (std::uint64_t i = 1; i <= 100; ++i)
    batch.push_back(
        ev(weird, kBase, i * 1'000, sg::EventKind::db, i % 5 == 0 ? sg::Status::error : sg::Status::ok));
  batch.push_back(ev("/api", kBase, 777, sg::EventKind::request));
  batch.push_back(ev("fn", kBase, 5, sg::EventKind::function));
  batch.push_back(ev("overflow.me", kBase, 5, sg::EventKind::function));
  batch.push_back(ev("op", 0, 1));  // dropped as old
  store.record(batch, kBase);
  const auto snap = store.snapshot(kBase + 1);
  const std::string json = sg::to_json(snap);

  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(std::uint64_t(doc["window_start"]), snap.window_start_unix_ns);
  EXPECT_EQ(std::uint64_t(doc["window_end"]), kBase + 1);
  EXPECT_EQ(std::uint64_t(doc["overflowed"]), 1u);
  EXPECT_EQ(std::uint64_t(doc["dropped_old"]), 1u);
  EXPECT_EQ(std::uint64_t(doc["dropped_future"]), 0u);
  simdjson::dom::array entries = doc["entries"];
  ASSERT_EQ(entries.size(), snap.entries.size());
  ASSERT_EQ(entries.size(), 4u);

  bool found_db = false;
  std::size_t i = 0;
  for (simdjson::dom::element e : entries) {
    const auto& want = snap.entries[i++];
    EXPECT_EQ(std::string_view(e["kind"]), sg::to_string(want.kind));
    EXPECT_EQ(std::string_view(e["name"]), want.name);
    EXPECT_EQ(std::uint64_t(e["count"]), want.count);
    EXPECT_EQ(double(e["p50_ns"]), want.p50_ns);  // shortest round-trip form
    EXPECT_EQ(double(e["p99_ns"]), want.p99_ns);
    if (std::string_view(e["kind"]) == "db") {
      found_db = true;
      EXPECT_EQ(std::string_view(e["name"]), std::string_view(weird));  // escaped and read back
      EXPECT_EQ(std::uint64_t(e["count"]), 100u);
      EXPECT_EQ(std::uint64_t(e["errors"]), 20u);
      expect_rel(double(e["p50_ns"]), 50'000, 0.01, "p50");
      expect_rel(double(e["p90_ns"]), 90'000, 0.01, "p90");
      expect_rel(double(e["p99_ns"]), 99'000, 0.01, "p99");
      EXPECT_EQ(double(e["max_ns"]), 100'000.0);
      EXPECT_EQ(double(e["mean_ns"]), 50'500.0);
    }
  }
  EXPECT_TRUE(found_db);
  // The StatsStore member renders the same shape for the live clock.
  sg::StatsStore empty;
  ASSERT_EQ(parser.parse(empty.to_json()).get(doc), simdjson::SUCCESS);
  EXPECT_EQ(simdjson::dom::array(doc["entries"]).size(), 0u);
}
