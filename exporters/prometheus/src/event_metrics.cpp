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
#include "spyglass/utf8.hpp"

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

/// Kinds that carry HTTP body bytes: requests served and requests made.
bool has_bytes(EventKind kind) noexcept { return kind == EventKind::request || kind == EventKind::client; }

}  // namespace

EventMetrics::EventMetrics(const std::vector<double>& bounds, std::size_t max_series,
                           const Collector* collector)
    : bounds_(bounds), max_series_(max_series), collector_(collector) {
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

std::size_t EventMetrics::series_cost(EventKind kind) const noexcept {
  // 2 spyglass_events_total (ok, error); the histogram's buckets, +Inf, _sum and _count;
  // spyglass_db_rows_total or the two spyglass_http_request_bytes_total.
  const std::size_t extra = kind == EventKind::db ? 1 : has_bytes(kind) ? 2 : 0;
  return 2 + bounds_.size() + 3 + extra;
}

Series* EventMetrics::add_series(EventKind kind, std::string label) {
  auto s = std::make_unique<Series>(kind, std::move(label), bounds_.size() + 1);
  Series* raw = s.get();
  std::lock_guard<std::mutex> lock(series_mutex_);
  series_.push_back(std::move(s));
  return raw;
}

EventMetrics::Target EventMetrics::resolve(KindTable& table, EventKind kind, const char* name) {
  std::string label;
  append_utf8_repaired(name != nullptr ? std::string_view(name) : std::string_view(), label);
  // Distinct pointers may hold the same text, and distinct invalid texts may repair to
  // the same label: series are keyed by the label so the exposition has no duplicates.
  // A name that is "__other__" itself shares that series but is no overflow, and it
  // takes nothing from the budget of series.
  Target t{nullptr, false};
  if (auto it = table.by_label.find(label); it != table.by_label.end()) {
    t.series = it->second;
  } else if (label != kOther && series_used_ + series_cost(kind) <= max_series_) {
    series_used_ += series_cost(kind);  // "__other__" is outside the budget
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
    } else if (has_bytes(kind)) {
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
  read_collector();
  collector_ = nullptr;
  frozen_ = true;
}

void EventMetrics::read_collector() const {
  // Caller holds collector_mutex_. Counters keep the highest value read, so that a
  // snapshot taken under load never makes one go back.
  if (collector_ == nullptr) return;
  const CollectorCounters c = collector_->counters();
  last_.offered = std::max(last_.offered, c.offered);
  last_.rejected = std::max(last_.rejected, c.rejected);
  last_.dispatched = std::max(last_.dispatched, c.dispatched);
  last_.pre_fork = std::max(last_.pre_fork, c.pre_fork);
  last_.in_transit = c.in_transit;
  auto exporters = collector_->exporter_counters();
  // Exporters are only ever added, in order: index i is the same exporter on each read.
  if (last_exporters_.size() < exporters.size()) last_exporters_.resize(exporters.size());
  for (std::size_t i = 0; i < exporters.size(); ++i) {
    ExporterCounters& l = last_exporters_[i];
    const ExporterCounters& e = exporters[i];
    l.name = e.name;
    l.produced = std::max(l.produced, e.produced);
    l.sent = std::max(l.sent, e.sent);
    l.failed = std::max(l.failed, e.failed);
    l.dropped = std::max(l.dropped, e.dropped);
    l.pending = e.pending;
  }
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
  MetricFamily bytes =
      family("spyglass_http_request_bytes_total",
             "Bytes of HTTP requests served (kind request) and made (kind client), by name and direction "
             "(in: received, out: sent).",
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
      rows.metric.push_back(counter(to_double(load(s->rows)), {{"kind", kind}, {"name", s->label}}));
    } else if (has_bytes(s->kind)) {
      bytes.metric.push_back(
          counter(to_double(load(s->bytes_in)), {{"kind", kind}, {"name", s->label}, {"direction", "in"}}));
      bytes.metric.push_back(
          counter(to_double(load(s->bytes_out)), {{"kind", kind}, {"name", s->label}, {"direction", "out"}}));
    }
  }
  for (auto* f : {&events, &duration, &rows, &bytes}) {
    if (!f->metric.empty()) out.push_back(std::move(*f));
  }
  MetricFamily overflow =
      family("spyglass_series_overflow_total",
             "Events counted under name=\"__other__\" because their series did not fit in max_series.",
             MetricType::Counter);
  overflow.metric.push_back(counter(to_double(overflow_.load(std::memory_order_relaxed))));
  out.push_back(std::move(overflow));

  std::lock_guard<std::mutex> lock(collector_mutex_);
  if (collector_ == nullptr && !frozen_) return out;
  read_collector();
  const CollectorCounters& c = last_;
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
  one("spyglass_collector_events_offered_total", "Events producers passed to the collector.",
      MetricType::Counter, c.offered);
  one("spyglass_collector_events_rejected_total",
      "Events the collector discarded at once because its transit was full.", MetricType::Counter,
      c.rejected);
  one("spyglass_collector_events_dispatched_total", "Events the collector handed to the exporters' buffers.",
      MetricType::Counter, c.dispatched);
  one("spyglass_collector_events_pre_fork_total",
      "In a forked child: spans opened before fork() and closed after it, discarded (the parent records "
      "them).",
      MetricType::Counter, c.pre_fork);
  one("spyglass_collector_transit_events", "Events in the collector's transit, not yet dispatched.",
      MetricType::Gauge, c.in_transit);

  if (last_exporters_.empty()) return out;
  const auto per_exporter = [&](const char* name, const char* help, MetricType type,
                                std::uint64_t ExporterCounters::*field) {
    MetricFamily f = family(name, help, type);
    for (const ExporterCounters& e : last_exporters_) {
      ClientMetric m;
      m.label = {{"exporter", e.name}};
      (type == MetricType::Counter ? m.counter.value : m.gauge.value) = to_double(e.*field);
      f.metric.push_back(std::move(m));
    }
    out.push_back(std::move(f));
  };
  per_exporter("spyglass_exporter_events_produced_total", "Events offered to the exporter's buffer.",
               MetricType::Counter, &ExporterCounters::produced);
  per_exporter("spyglass_exporter_events_sent_total", "Events the exporter delivered.", MetricType::Counter,
               &ExporterCounters::sent);
  per_exporter("spyglass_exporter_events_failed_total", "Events the exporter failed to deliver.",
               MetricType::Counter, &ExporterCounters::failed);
  per_exporter("spyglass_exporter_events_dropped_total",
               "Events evicted or refused because the exporter's buffer was full.", MetricType::Counter,
               &ExporterCounters::dropped);
  per_exporter("spyglass_exporter_pending_events", "Events in the exporter's buffer or being exported now.",
               MetricType::Gauge, &ExporterCounters::pending);
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::prom::detail
