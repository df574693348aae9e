// `spyglass evaluate`: labelled synthetic series, detections scored by windows.

#include "evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <string_view>

#include "analyze.hpp"
#include "spyglass/json.hpp"
#include "spyglass/monitor/analytics.hpp"
#include "spyglass/monitor/detectors.hpp"

namespace SPYGLASS_NAMESPACE::cli {

namespace {

// A labelled anomaly: detections at indices [start, end] count for it.
struct Window {
  std::size_t start, end;
};

struct Labelled {
  std::vector<double> values;
  std::vector<Window> windows;
};

constexpr const char* kKinds[] = {"spikes",          "level_shift", "trend_change",
                                  "variance_change", "seasonal",    "missing"};

// Positions for `count` events in [lo, n - tail), at least `gap` apart.
std::vector<std::size_t> positions(std::mt19937_64& rng, std::size_t n, std::size_t count, std::size_t lo,
                                   std::size_t tail, std::size_t gap) {
  std::vector<std::size_t> out;
  std::uniform_int_distribution<std::size_t> pick(lo, n - tail - 1);
  for (int tries = 0; out.size() < count && tries < 10000; ++tries) {
    const std::size_t p = pick(rng);
    if (std::all_of(out.begin(), out.end(), [&](std::size_t q) { return (p > q ? p - q : q - p) >= gap; }))
      out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Labelled generate(const std::string& kind, std::size_t n, std::mt19937_64& rng) {
  std::normal_distribution<double> noise(0.0, 1.0);
  std::uniform_real_distribution<double> mag(6.0, 10.0);
  std::bernoulli_distribution sign(0.5);
  Labelled l;
  l.values.resize(n);
  for (double& v : l.values) v = 100.0 + noise(rng);
  auto spikes = [&](std::size_t count) {
    for (std::size_t p : positions(rng, n, count, 100, 1, 60)) {
      l.values[p] += (sign(rng) ? 1 : -1) * mag(rng);
      l.windows.push_back({p, p + 2});
    }
  };
  if (kind == "spikes") {
    spikes(5);
  } else if (kind == "level_shift") {
    for (std::size_t p : positions(rng, n, 2, 150, 150, 300)) {
      const double d = (sign(rng) ? 1 : -1) * std::uniform_real_distribution<double>(4.0, 6.0)(rng);
      for (std::size_t i = p; i < n; ++i) l.values[i] += d;
      l.windows.push_back({p, p + 30});
    }
  } else if (kind == "trend_change") {
    const std::size_t p = positions(rng, n, 1, 200, 200, 1)[0];
    for (std::size_t i = p; i < n; ++i) l.values[i] += 0.08 * static_cast<double>(i - p);
    l.windows.push_back({p, p + 80});
  } else if (kind == "variance_change") {
    const std::size_t p = positions(rng, n, 1, 200, 200, 1)[0];
    for (std::size_t i = p; i < n; ++i) l.values[i] = 100.0 + 5.0 * (l.values[i] - 100.0);
    l.windows.push_back({p, p + 40});
  } else if (kind == "seasonal") {
    // Five-minute samples of a daily cycle (288 points) five times the noise.
    for (std::size_t i = 0; i < n; ++i)
      l.values[i] += 5.0 * std::sin(2 * std::numbers::pi * static_cast<double>(i) / 288.0);
    spikes(4);
  } else {  // missing: spikes, then a tenth of the points dropped (never a labelled one)
    spikes(5);
    std::bernoulli_distribution drop(0.1);
    std::vector<double> kept;
    std::vector<Window> moved;
    std::size_t w = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const bool labelled = w < l.windows.size() && i == l.windows[w].start;
      if (!labelled && drop(rng)) continue;
      if (labelled) {
        moved.push_back({kept.size(), kept.size() + 2});
        ++w;
      }
      kept.push_back(l.values[i]);
    }
    l.values = std::move(kept);
    l.windows = std::move(moved);
  }
  return l;
}

struct Counts {
  std::size_t windows = 0, found = 0, false_alarms = 0;
  [[nodiscard]] double precision() const {
    return found + false_alarms == 0 ? 0.0
                                     : static_cast<double>(found) / static_cast<double>(found + false_alarms);
  }
  [[nodiscard]] double recall() const {
    return windows == 0 ? 0.0 : static_cast<double>(found) / static_cast<double>(windows);
  }
  [[nodiscard]] double f1() const {
    const double p = precision(), r = recall();
    return p + r == 0 ? 0.0 : 2 * p * r / (p + r);
  }
  void add(const Counts& c) {
    windows += c.windows;
    found += c.found;
    false_alarms += c.false_alarms;
  }
};

// A window with any detection counts once; a detection in no window is a false alarm.
Counts score(const std::vector<Window>& windows, const std::vector<std::size_t>& detections) {
  Counts c;
  c.windows = windows.size();
  std::vector<bool> hit(windows.size(), false);
  for (std::size_t d : detections) {
    bool inside = false;
    for (std::size_t i = 0; i < windows.size(); ++i) {
      if (d >= windows[i].start && d <= windows[i].end) {
        hit[i] = true;
        inside = true;
      }
    }
    if (!inside) ++c.false_alarms;
  }
  c.found = static_cast<std::size_t>(std::count(hit.begin(), hit.end(), true));
  return c;
}

// The detectors of shifts and growth, each on the kinds it is for: change points (after
// the blip merge, as analyze reports them) on level and variance changes, GrowthDetector
// (t = the point's index) on the trend change. A growth episode counts once, at its first
// flagged point; it lasts until a window's length passes without a flagged point.
struct Structural {
  const char* method;
  std::vector<const char*> kinds;
};
const Structural kStructural[] = {{"change-points", {"level_shift", "variance_change"}},
                                  {"growth", {"trend_change"}}};

// GrowthDetector's options here: a 40-point window, and no growth relative to the mean
// (the series sit at 100, the trend adds 0.08 a point), the fit's significance and R²
// deciding.
constexpr analytics::GrowthDetector::Options kGrowth{.window = 40, .min_r2 = 0.3, .min_growth = 0};

std::vector<std::size_t> structural_detections(const std::string& method, const std::vector<double>& xs) {
  std::vector<std::size_t> out;
  if (method == "change-points") {
    for (const auto& c : analytics::merge_blips(xs, analytics::change_points(xs)).changes)
      out.push_back(c.index);
    return out;
  }
  analytics::GrowthDetector g(kGrowth);
  std::size_t last = 0;  // the latest flagged point
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (!g.update(static_cast<double>(i), xs[i]).anomaly) continue;
    if (out.empty() || i - last > static_cast<std::size_t>(kGrowth.window)) out.push_back(i);
    last = i;
  }
  return out;
}

void write_counts(JsonWriter& w, const Counts& c) {
  w.key("precision");
  w.value(c.precision());
  w.key("recall");
  w.value(c.recall());
  w.key("f1");
  w.value(c.f1());
  w.key("windows");
  w.value(c.windows);
  w.key("found");
  w.value(c.found);
  w.key("false_alarms");
  w.value(c.false_alarms);
}

std::string fixed(double v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

}  // namespace

std::string evaluate_report(const EvaluateOptions& o, bool json) {
  constexpr std::size_t kKindCount = std::size(kKinds);
  // The same series for every method.
  std::vector<std::vector<Labelled>> data(kKindCount);
  std::mt19937_64 rng(o.seed);
  for (std::size_t k = 0; k < kKindCount; ++k) {
    for (std::size_t i = 0; i < o.per_kind; ++i) data[k].push_back(generate(kKinds[k], o.length, rng));
  }
  struct Row {
    std::string method;
    Counts total;
    std::vector<Counts> kinds;
  };
  std::vector<Row> rows;
  for (const auto& m : o.methods) {
    Row row{m, {}, std::vector<Counts>(kKindCount)};
    DetectOptions d;
    d.method = m;
    for (std::size_t k = 0; k < kKindCount; ++k) {
      for (const auto& l : data[k]) {
        Series s;
        s.values = l.values;
        row.kinds[k].add(score(l.windows, detect_indices(s, d)));
      }
      row.total.add(row.kinds[k]);
    }
    rows.push_back(std::move(row));
  }
  // The shift and growth detectors, on the same series of their kinds.
  struct StructuralRow {
    const Structural* s;
    std::vector<Counts> kinds;
  };
  std::vector<StructuralRow> structural;
  for (const Structural& st : kStructural) {
    StructuralRow row{&st, {}};
    for (const char* kind : st.kinds) {
      const auto k =
          static_cast<std::size_t>(std::find_if(std::begin(kKinds), std::end(kKinds),
                                                [&](const char* x) { return std::string_view(x) == kind; }) -
                                   std::begin(kKinds));
      Counts c;
      for (const auto& l : data[k]) c.add(score(l.windows, structural_detections(st.method, l.values)));
      row.kinds.push_back(c);
    }
    structural.push_back(std::move(row));
  }
  const auto best = std::max_element(rows.begin(), rows.end(),
                                     [](const Row& a, const Row& b) { return a.total.f1() < b.total.f1(); });

  std::string out;
  if (json) {
    JsonWriter w(out);
    w.begin_object();
    w.key("methods");
    w.begin_array();
    for (const auto& r : rows) {
      const auto counts = [&](const Counts& c) { write_counts(w, c); };
      w.begin_object();
      w.key("method");
      w.value(r.method);
      counts(r.total);
      w.key("kinds");
      w.begin_object();
      for (std::size_t k = 0; k < kKindCount; ++k) {
        w.key(kKinds[k]);
        w.begin_object();
        counts(r.kinds[k]);
        w.end_object();
      }
      w.end_object();
      w.end_object();
    }
    w.end_array();
    w.key("structural");
    w.begin_array();
    for (const auto& r : structural) {
      w.begin_object();
      w.key("method");
      w.value(r.s->method);
      w.key("kinds");
      w.begin_object();
      for (std::size_t k = 0; k < r.kinds.size(); ++k) {
        w.key(r.s->kinds[k]);
        w.begin_object();
        write_counts(w, r.kinds[k]);
        w.end_object();
      }
      w.end_object();
      w.end_object();
    }
    w.end_array();
    w.key("best");
    w.value(best == rows.end() ? "" : best->method);
    w.key("parameters");
    w.begin_object();
    w.key("seed");
    w.value(o.seed);
    w.key("series_per_kind");
    w.value(o.per_kind);
    w.key("length");
    w.value(o.length);
    w.end_object();
    w.end_object();
    out += '\n';
    return out;
  }
  out = "Detectors on " + std::to_string(o.per_kind) + " series of " + std::to_string(o.length) +
        " points per kind (seed " + std::to_string(o.seed) +
        "), past-only, default parameters; a detection inside a labelled window counts once, one outside is "
        "a false "
        "alarm.\n\n";
  out += "| method | precision | recall | F1 |";
  for (const char* k : kKinds) out += std::string(" F1 ") + k + " |";
  out += "\n|---|---|---|---|";
  for (std::size_t k = 0; k < kKindCount; ++k) out += "---|";
  out += "\n";
  for (const auto& r : rows) {
    out += "| " + r.method + " | " + fixed(r.total.precision()) + " | " + fixed(r.total.recall()) + " | " +
           fixed(r.total.f1()) + " |";
    for (const auto& c : r.kinds) out += " " + fixed(c.f1()) + " |";
    out += "\n";
  }
  if (best != rows.end()) out += "\nbest F1: " + best->method + "\n";
  out +=
      "\nShift and growth detectors, on the kinds they are for (change points after the blip merge; "
      "GrowthDetector over 40 points, R² >= 0.3, t = the point's index):\n\n"
      "| method | kind | precision | recall | F1 |\n|---|---|---|---|---|\n";
  for (const auto& r : structural) {
    for (std::size_t k = 0; k < r.kinds.size(); ++k) {
      const Counts& c = r.kinds[k];
      out += std::string("| ") + r.s->method + " | " + r.s->kinds[k] + " | " + fixed(c.precision()) + " | " +
             fixed(c.recall()) + " | " + fixed(c.f1()) + " |\n";
    }
  }
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::cli
