// Event-derived metrics. The exporter's thread updates plain per-series counters found
// through a pointer-keyed cache; scrapes read them and build the metric families, so
// the per-event cost is a hash look-up, a bucket search and a few stores.

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

#include "internal.hpp"

namespace SPYGLASS_NAMESPACE::prom::detail {

namespace {

constexpr std::string_view kOther = "__other__";
/// Name pointers remembered per kind; beyond this, look-ups go by content. Bounds memory
/// when names are made at run time without end.
constexpr std::size_t kMaxCachedPointers = 1u << 16;

using ::prometheus::ClientMetric;
using ::prometheus::MetricFamily;
using ::prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric counter(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  return m;
}

double to_double(std::uint64_t v) noexcept { return static_cast<double>(v); }

std::uint64_t load(const std::atomic<std::uint64_t>& a) noexcept { return a.load(std::memory_order_relaxed); }

}  // namespace

EventMetrics::EventMetrics(const std::vector<double>& bounds, std::size_t max_names,
                           const Collector* collector)
    : bounds_(bounds), max_names_(max_names), collector_(collector) {
  if (bounds_.empty()) throw std::invalid_argument("spyglass prometheus: buckets must not be empty");
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    const double b = bounds_[i];
    if (!std::isfinite(b) || b <= 0 || b > 1e9)
      throw std::invalid_argument("spyglass prometheus: bucket bound " + std::to_string(b) +
                                  " is not a finite number of seconds in (0, 1e9]");
    if (i > 0 && !(b > bounds_[i - 1]))
      throw std::invalid_argument("spyglass prometheus: bucket bounds must be strictly ascending");
    bounds_ns_.push_back(static_cast<std::uint64_t>(std::llround(b * 1e9)));
  }
}

Series* EventMetrics::add_series(EventKind kind, std::string label) {
  auto s = std::make_unique<Series>(kind, std::move(label), bounds_.size() + 1);
  Series* raw = s.get();
  std::lock_guard<std::mutex> lock(series_mutex_);
  series_.push_back(std::move(s));
  return raw;
}

EventMetrics::Target EventMetrics::resolve(KindTable& table, EventKind kind, const char* name) {
  std::string label = to_valid_utf8(name != nullptr ? std::string_view(name) : std::string_view());
  // Distinct pointers may hold the same text, and distinct invalid texts may repair to
  // the same label: series are keyed by the label so the exposition has no duplicates.
  // A name that is "__other__" itself shares that series but is no overflow, and it
  // takes nothing from the budget of names.
  Target t{nullptr, false};
  if (auto it = table.by_label.find(label); it != table.by_label.end()) {
    t.series = it->second;
  } else if (table.names < max_names_ && label != kOther) {
    ++table.names;
    t.series = add_series(kind, label);
    table.by_label.emplace(std::move(label), t.series);
  } else {
    t.folded = label != kOther;
    auto other = table.by_label.find(std::string(kOther));
    if (other != table.by_label.end()) {
      t.series = other->second;
    } else {
      t.series = add_series(kind, std::string(kOther));
      table.by_label.emplace(std::string(kOther), t.series);
    }
  }
  if (table.by_pointer.size() < kMaxCachedPointers) table.by_pointer.emplace(name, t);
  return t;
}

void EventMetrics::record(std::span<const Event> events) {
  const std::uint64_t* const bounds_begin = bounds_ns_.data();
  const std::uint64_t* const bounds_end = bounds_begin + bounds_ns_.size();
  std::uint64_t overflowed = 0;
  for (const Event& e : events) {
    const auto k = static_cast<std::size_t>(e.kind) < tables_.size() ? static_cast<std::size_t>(e.kind) : 3u;
    const EventKind kind = static_cast<EventKind>(k);
    KindTable& table = tables_[k];
    const auto it = table.by_pointer.find(e.name);
    const Target t = it != table.by_pointer.end() ? it->second : resolve(table, kind, e.name);
    Series* s = t.series;

    bump(s->count[e.status == Status::error ? 1 : 0]);
    const auto bucket =
        static_cast<std::size_t>(std::lower_bound(bounds_begin, bounds_end, e.duration) - bounds_begin);
    bump(s->bucket_counts[bucket]);
    bump(s->sum_ns, e.duration);
    if (kind == EventKind::db) {
      bump(s->rows, e.rows);
    } else if (kind == EventKind::request) {
      bump(s->bytes_in, e.bytes_in);
      bump(s->bytes_out, e.bytes_out);
    }
    overflowed += t.folded ? 1 : 0;
  }
  if (overflowed != 0) bump(overflow_, overflowed);
}

void EventMetrics::freeze_collector() {
  std::lock_guard<std::mutex> lock(collector_mutex_);
  if (collector_ == nullptr) return;
  static_cast<void>(collector_counters());
  collector_ = nullptr;
  frozen_ = true;
}

CollectorCounters EventMetrics::collector_counters() const {
  // Caller holds collector_mutex_.
  if (collector_ != nullptr) {
    const CollectorCounters c = collector_->counters();
    last_.offered = std::max(last_.offered, c.offered);
    last_.rejected = std::max(last_.rejected, c.rejected);
    last_.dispatched = std::max(last_.dispatched, c.dispatched);
    last_.pre_fork = std::max(last_.pre_fork, c.pre_fork);
    last_.in_transit = c.in_transit;
  }
  return last_;
}

std::vector<MetricFamily> EventMetrics::Collect() const {
  std::vector<Series*> series;
  {
    std::lock_guard<std::mutex> lock(series_mutex_);
    series.reserve(series_.size());
    for (const auto& s : series_) series.push_back(s.get());
  }

  std::vector<MetricFamily> out;
  MetricFamily events =
      family("spyglass_events_total", "Events recorded, by kind, name and status.", MetricType::Counter);
  MetricFamily duration =
      family("spyglass_event_duration_seconds", "Duration of recorded events.", MetricType::Histogram);
  MetricFamily rows =
      family("spyglass_db_rows_total", "Rows returned or affected by database queries.", MetricType::Counter);
  MetricFamily bytes = family("spyglass_http_request_bytes_total",
                              "Bytes of HTTP requests, by route and direction (in: received, out: sent).",
                              MetricType::Counter);
  events.metric.reserve(series.size() * 2);
  duration.metric.reserve(series.size());

  for (const Series* s : series) {
    const std::string kind(to_string(s->kind));
    for (int st = 0; st < 2; ++st) {
      events.metric.push_back(counter(
          to_double(load(s->count[static_cast<std::size_t>(st)])),
          {{"kind", kind}, {"name", s->label}, {"status", std::string(to_string(static_cast<Status>(st)))}}));
    }
    ClientMetric h;
    h.label = {{"kind", kind}, {"name", s->label}};
    h.histogram.bucket.resize(bounds_.size() + 1);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
      // Count and +Inf come from the same reads as the buckets, so they always agree.
      cumulative += load(s->bucket_counts[i]);
      h.histogram.bucket[i].cumulative_count = cumulative;
      h.histogram.bucket[i].upper_bound =
          i < bounds_.size() ? bounds_[i] : std::numeric_limits<double>::infinity();
    }
    h.histogram.sample_count = cumulative;
    h.histogram.sample_sum = to_double(load(s->sum_ns)) / 1e9;
    duration.metric.push_back(std::move(h));
    if (s->kind == EventKind::db) {
      rows.metric.push_back(counter(to_double(load(s->rows)), {{"name", s->label}}));
    } else if (s->kind == EventKind::request) {
      bytes.metric.push_back(
          counter(to_double(load(s->bytes_in)), {{"route", s->label}, {"direction", "in"}}));
      bytes.metric.push_back(
          counter(to_double(load(s->bytes_out)), {{"route", s->label}, {"direction", "out"}}));
    }
  }
  for (auto* f : {&events, &duration, &rows, &bytes}) {
    if (!f->metric.empty()) out.push_back(std::move(*f));
  }
  MetricFamily overflow = family(
      "spyglass_series_overflow_total",
      "Events counted under name=\"__other__\" because their kind had too many names.", MetricType::Counter);
  overflow.metric.push_back(counter(to_double(overflow_.load(std::memory_order_relaxed))));
  out.push_back(std::move(overflow));

  std::lock_guard<std::mutex> lock(collector_mutex_);
  if (collector_ == nullptr && !frozen_) return out;
  const CollectorCounters c = collector_counters();
  const auto one = [&](const char* name, const char* help, MetricType type, std::uint64_t v) {
    MetricFamily f = family(name, help, type);
    ClientMetric m;
    if (type == MetricType::Counter) {
      m.counter.value = to_double(v);
    } else {
      m.gauge.value = to_double(v);
    }
    f.metric.push_back(std::move(m));
    out.push_back(std::move(f));
  };
  one("spyglass_collector_events_enqueued_total", "Events offered to the collector.", MetricType::Counter,
      c.offered);
  one("spyglass_collector_events_dropped_total", "Events the collector dropped before export.",
      MetricType::Counter, c.rejected);
  one("spyglass_collector_events_exported_total", "Events handed to the exporters.", MetricType::Counter,
      c.dispatched);
  one("spyglass_collector_queue_depth", "Events waiting in the collector.", MetricType::Gauge, c.in_transit);
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::prom::detail
