// `spyglass detect` and `spyglass analyze --csv`.

#include "analyze.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <vector>

#include "report.hpp"

#include "spyglass/json.hpp"
#include "spyglass/monitor/analytics.hpp"
#include "spyglass/monitor/detectors.hpp"
#include "spyglass/monitor/run_metrics.hpp"

namespace SPYGLASS_NAMESPACE::cli {

namespace an = analytics;

namespace {

constexpr std::size_t kRollingWarmup = 10;  // past points a rolling method needs
constexpr std::size_t kEwmaWarmup = 20;

struct Flag {
  std::size_t index;
  double score;
};

an::AnomalyMethod batch_method(const std::string& m) {
  if (m == "iqr") return an::AnomalyMethod::iqr;
  if (m == "zscore") return an::AnomalyMethod::zscore;
  return an::AnomalyMethod::modified_zscore;
}

double threshold_of(const DetectOptions& o) {
  if (!std::isnan(o.threshold)) return o.threshold;
  if (o.method == "ewma") return an::EwmaDetector::Options{}.threshold;
  return an::default_threshold(batch_method(o.method));
}

std::vector<Flag> detect(const Series& s, const DetectOptions& o) {
  std::vector<Flag> out;
  const double thr = threshold_of(o);
  if (o.offline) {
    if (s.values.empty()) return out;
    for (const auto& a : an::anomalies(s.values, batch_method(o.method), thr))
      out.push_back({a.index, a.score});
    return out;
  }
  if (o.method == "ewma") {
    an::EwmaDetector det({.threshold = thr, .warmup = kEwmaWarmup});
    for (std::size_t i = 0; i < s.values.size(); ++i) {
      const auto d = det.update(s.values[i]);
      if (d.anomaly) out.push_back({i, d.score});
    }
    return out;
  }
  if (o.method == "mad") {
    an::RollingMadDetector det({.window = o.window, .threshold = thr, .warmup = kRollingWarmup});
    for (std::size_t i = 0; i < s.values.size(); ++i) {
      const auto d = det.update(s.values[i]);
      if (d.anomaly) out.push_back({i, d.score});
    }
    return out;
  }
  // z-score and IQR against the same rolling window of past points.
  std::deque<double> past;
  std::vector<double> ref;
  for (std::size_t i = 0; i < s.values.size(); ++i) {
    if (past.size() >= kRollingWarmup) {
      ref.assign(past.begin(), past.end());
      const double sc = an::anomaly_score(ref, s.values[i], batch_method(o.method));
      if (std::fabs(sc) > thr) out.push_back({i, sc});
    }
    past.push_back(s.values[i]);
    if (past.size() > o.window) past.pop_front();
  }
  return out;
}

const auto num = [](double v, int digits = 4) { return format_number(v, digits); };
const auto pct = format_change;

// What the series came from, for messages and the text report.
std::string source_name(const DetectOptions& o) {
  if (o.prometheus) return "query '" + o.prometheus->query + "' at " + o.prometheus->url;
  return o.source + ", column " + o.value_column;
}

// What Series::lines holds for this source: a CSV line, or a point's number in the answer.
const char* point_key(const DetectOptions& o) { return o.prometheus ? "point" : "line"; }

void write_source(JsonWriter& w, const DetectOptions& o) {
  if (const auto& p = o.prometheus) {
    w.key("prometheus");
    w.value(p->url);
    w.key("query");
    w.value(p->query);
    w.key("start");
    w.value(p->start);
    w.key("end");
    w.value(p->end);
    w.key("step_seconds");
    w.value(p->step);
    return;
  }
  w.key("csv");
  w.value(o.source);
  w.key("time_column");
  w.value(o.time_column);
  w.key("value_column");
  w.value(o.value_column);
}

void write_parameters(JsonWriter& w, const Series& s, const DetectOptions& o) {
  w.key("parameters");
  w.begin_object();
  w.key("method");
  w.value(o.method);
  w.key("threshold");
  w.value(threshold_of(o));
  w.key("offline");
  w.value(o.offline);
  if (!o.offline) {
    if (o.method == "ewma") {
      w.key("alpha");
      w.value(an::EwmaDetector::Options{}.alpha);
      w.key("warmup");
      w.value(kEwmaWarmup);
    } else {
      w.key("window");
      w.value(o.window);
      w.key("warmup");
      w.value(kRollingWarmup);
    }
  }
  write_source(w, o);
  w.key("points");
  w.value(s.values.size());
  w.key("missing");
  w.value(s.missing);
  w.end_object();
}

void write_flags(JsonWriter& w, const Series& s, const std::vector<Flag>& flags, const std::string& method,
                 const char* id_key = "line") {
  w.begin_array();
  for (const auto& f : flags) {
    w.begin_object();
    w.key("timestamp");
    w.value(s.stamps[f.index]);
    w.key("value");
    w.value(s.values[f.index]);
    w.key("score");
    w.value(f.score);
    w.key("method");
    w.value(method);
    w.key(id_key);
    w.value(s.lines[f.index]);
    w.end_object();
  }
  w.end_array();
}

std::string flags_text(const Series& s, const std::vector<Flag>& flags) {
  std::string out;
  for (const auto& f : flags) {
    out += "  " + s.stamps[f.index] + "  value " + num(s.values[f.index], 6) + "  score " + num(f.score, 3) +
           "  (line " + std::to_string(s.lines[f.index]) + ")\n";
  }
  return out;
}

std::string describe_method(const DetectOptions& o) {
  std::string d = o.method + ", threshold " + num(threshold_of(o));
  if (o.offline) return d + ", whole series";
  if (o.method == "ewma") return d + ", past only";
  return d + ", past " + std::to_string(o.window) + " points";
}

// Median spacing of the points in seconds (0 with fewer than two).
double median_step(const Series& s) {
  if (s.times.size() < 2) return 0;
  std::vector<double> d;
  for (std::size_t i = 1; i < s.times.size(); ++i) d.push_back(s.times[i] - s.times[i - 1]);
  return an::median(d);
}

std::string duration_words(double seconds) {
  if (seconds < 120) return num(seconds, 3) + " s";
  if (seconds < 7200) return num(seconds / 60, 3) + " min";
  if (seconds < 172800) return num(seconds / 3600, 3) + " h";
  return num(seconds / 86400, 3) + " days";
}

}  // namespace

std::vector<std::size_t> detect_indices(const Series& s, const DetectOptions& o) {
  check_detect_options(o);
  std::vector<std::size_t> out;
  for (const auto& f : detect(s, o)) out.push_back(f.index);
  return out;
}

void check_detect_options(const DetectOptions& o) {
  if (o.method != "mad" && o.method != "ewma" && o.method != "zscore" && o.method != "iqr")
    throw InputError("--method: expected mad, ewma, zscore or iqr, got '" + o.method + "'");
  if (o.offline && o.method == "ewma")
    throw InputError("--method ewma judges each point by its past only; --offline takes mad, zscore or iqr");
  if (o.window < 3) throw InputError("--window: at least 3 points");
  if (!std::isnan(o.threshold) && !(o.threshold > 0)) throw InputError("--threshold: must be positive");
}

std::string detect_report(const Series& s, const DetectOptions& o, bool json) {
  check_detect_options(o);
  const auto flags = detect(s, o);
  std::string out;
  if (json) {
    JsonWriter w(out);
    w.begin_object();
    w.key("anomalies");
    write_flags(w, s, flags, o.method, point_key(o));
    write_parameters(w, s, o);
    w.end_object();
    out += '\n';
    return out;
  }
  out = std::to_string(flags.size()) + " anomal" + (flags.size() == 1 ? "y" : "ies") + " in " +
        std::to_string(s.values.size()) + " points (" + describe_method(o) + ")";
  if (s.missing != 0) out += ", " + std::to_string(s.missing) + " missing skipped";
  out += "\n" + flags_text(s, flags);
  return out;
}

namespace {

// Everything analyze computes on one series.
struct Analysis {
  an::Summary sum;
  an::Trend trend;
  std::vector<Flag> flags;
  std::vector<an::ChangePoint> cps;
  an::Forecast fc;
  std::optional<std::size_t> steps;  // to the limit
  double step_s = 0;                 // median spacing in seconds
};

// The trend of `s` per point and per second.
an::Trend series_trend(const Series& s, const std::string& unit) {
  // Times relative to the first point: the per-time fit is then exact for epoch stamps.
  std::vector<double> rel(s.times.size());
  for (std::size_t i = 0; i < rel.size(); ++i) rel[i] = s.times[i] - s.times.front();
  const bool timed = rel.back() > 0;
  return an::trend(s.values, timed ? std::span<const double>(rel) : std::span<const double>{}, 0.05, unit);
}

// `xs` without its cycle of `season` points: each phase's median taken out and the
// series' median put back, so levels keep their scale.
std::vector<double> deseasonalised(const std::vector<double>& xs, std::size_t season) {
  const double overall = an::median(xs);
  std::vector<double> rest(xs.size()), phase;
  for (std::size_t k = 0; k < season; ++k) {
    phase.clear();
    for (std::size_t i = k; i < xs.size(); i += season) phase.push_back(xs[i]);
    const double m = an::median(phase);
    for (std::size_t i = k; i < xs.size(); i += season) rest[i] = xs[i] - m + overall;
  }
  return rest;
}

// Everything but the forecast when `forecast` is false (the pages draw no forecast).
// A `non_negative` metric (a duration, a size, a count) has its forecast and interval
// clamped at 0, where a Gaussian interval around a small mean would go below.
Analysis analyse(const Series& s, const AnalyzeOptions& o, const DetectOptions& d, const std::string& unit,
                 bool forecast = true, bool non_negative = false) {
  if (s.values.size() < 3) {
    throw InputError(source_name(d) + ": needs at least 3 points to analyse, found " +
                     std::to_string(s.values.size()));
  }
  if (o.season != 0 && s.values.size() < 2 * o.season) {
    throw InputError("--season " + std::to_string(o.season) + ": needs two full seasons (" +
                     std::to_string(2 * o.season) + " points), found " + std::to_string(s.values.size()));
  }
  Analysis a;
  a.sum = an::summarize(s.values);
  a.trend = series_trend(s, unit);
  // A cycle is neither an anomaly nor a change: with a season both are looked for in the
  // series without its cycle (the points themselves are what the report shows).
  Series rest;
  if (o.season != 0) rest.values = deseasonalised(s.values, o.season);
  const Series& judged = o.season != 0 ? rest : s;
  a.flags = detect(judged, d);
  a.cps = an::merge_blips(judged.values, an::change_points(judged.values)).changes;
  if (!forecast) return a;
  a.fc = o.season == 0 ? an::holt(s.values, o.horizon) : an::holt_winters(s.values, o.season, o.horizon);
  if (non_negative) {
    for (auto* v : {&a.fc.mean, &a.fc.lower, &a.fc.upper}) {
      for (double& x : *v) x = std::max(x, 0.0);
    }
  }
  if (o.limit) {
    a.steps = an::steps_to_limit(a.fc, *o.limit);
    if (!a.steps && !a.fc.mean.empty()) {
      const auto more = an::steps_to_limit(a.fc.mean.back(), a.fc.slope, *o.limit);
      if (more) a.steps = a.fc.mean.size() + *more;
    }
  }
  a.step_s = median_step(s);
  return a;
}

// How much a change point widened (> 1) or narrowed the spread; infinite from none.
double spread_ratio(const an::ChangePoint& c) {
  return c.stddev_before > 0 ? c.stddev_after / c.stddev_before : HUGE_VAL;
}

// How values print in text: plain numbers, or through a metric's formatter.
using Formatter = std::string (*)(double);
std::string plain(double v) { return num(v); }

std::string analysis_text(const Series& s, const AnalyzeOptions& o, const DetectOptions& d, const Analysis& a,
                          const std::string& unit, Formatter f) {
  std::string out;
  out += "summary: mean " + f(a.sum.mean) + "  median " + f(a.sum.median) + "  stddev " + f(a.sum.stddev) +
         "  min " + f(a.sum.min) + "  max " + f(a.sum.max) + "  MAD " + f(a.sum.mad) + "\n";
  out += "trend: " + a.trend.verdict;
  if (a.trend.per_time) out += "; " + f(a.trend.per_time->slope * 86400) + " per day";
  out += "\nanomalies: " + std::to_string(a.flags.size()) + " (" + describe_method(d) + ")\n";
  for (const auto& fl : a.flags) {
    out += "  " + s.stamps[fl.index] + "  " + f(s.values[fl.index]) + "  score " + num(fl.score, 3) + "  (" +
           (unit == "run" ? "run " : "line ") + std::to_string(s.lines[fl.index]) + ")\n";
  }
  out += "change points: " + std::to_string(a.cps.size()) + "\n";
  for (const auto& c : a.cps) {
    const std::string at = " starting at " + std::string(unit == "run" ? "run " : "line ") +
                           std::to_string(s.lines[c.index]) + " (" + s.stamps[c.index] + "): ";
    const std::string mean = "mean " + f(c.mean_before) + " -> " + f(c.mean_after);
    const std::string sd = "stddev " + f(c.stddev_before) + " -> " + f(c.stddev_after);
    if (an::is_variance_change(c)) {
      out += "  spread x" + num(spread_ratio(c), 2) + at + sd + ", " + mean;
    } else {
      out += "  " + std::string(c.mean_after >= c.mean_before ? "rose " : "fell ") + pct(c.relative_change) +
             at + mean + ", " + sd;
    }
    out += ", p " + num(c.p_value, 2);
    if (!s.notes.empty() && !s.notes[c.index].empty()) out += ", commit " + s.notes[c.index];
    out += "\n";
  }
  out += "forecast (" + std::string(o.season ? "Holt-Winters, season " + std::to_string(o.season) : "Holt") +
         ", alpha " + num(a.fc.alpha, 3) + " beta " + num(a.fc.beta, 3) +
         (o.season ? " gamma " + num(a.fc.gamma, 3) : std::string()) + "):";
  if (!a.fc.mean.empty()) {
    out += " in " + std::to_string(a.fc.mean.size()) + " " + unit + "s " + f(a.fc.mean.back()) + " (" +
           num(100 * a.fc.interval, 3) + "% interval " + f(a.fc.lower.back()) + " .. " +
           f(a.fc.upper.back()) + ")";
  }
  out += "\n";
  if (o.limit) {
    out += "  limit " + f(*o.limit) + ": ";
    if (a.steps) {
      out += "reached in about " + std::to_string(*a.steps) + " " + unit + "s";
      if (a.step_s > 0) out += " (" + duration_words(static_cast<double>(*a.steps) * a.step_s) + ")";
    } else {
      out += "not reached at the current trend";
    }
    out += "\n";
  }
  return out;
}

void number_members(JsonWriter& w, std::initializer_list<std::pair<const char*, double>> members) {
  for (const auto& [k, v] : members) {
    w.key(k);
    w.value(v);
  }
}

// The members of one analysis; `id_key` names what s.lines holds ("line" or "run_id").
void analysis_json(JsonWriter& w, const Series& s, const AnalyzeOptions& o, const DetectOptions& d,
                   const Analysis& a, const char* id_key) {
  w.key("summary");
  w.begin_object();
  number_members(w, {{"mean", a.sum.mean},
                     {"median", a.sum.median},
                     {"stddev", a.sum.stddev},
                     {"min", a.sum.min},
                     {"q1", a.sum.q1},
                     {"q3", a.sum.q3},
                     {"max", a.sum.max},
                     {"mad", a.sum.mad}});
  w.end_object();
  w.key("trend");
  w.begin_object();
  number_members(w, {{"slope_per_point", a.trend.per_index.slope},
                     {"intercept", a.trend.per_index.intercept},
                     {"r2", a.trend.per_index.r2},
                     {"p_value", a.trend.per_index.p_value},
                     {"relative_slope", a.trend.relative_slope}});
  w.key("slope_per_day");
  if (a.trend.per_time) {
    w.value(a.trend.per_time->slope * 86400);
  } else {
    w.null();
  }
  w.key("significant");
  w.value(a.trend.significant);
  w.key("verdict");
  w.value(a.trend.verdict);
  w.end_object();
  w.key("anomalies");
  write_flags(w, s, a.flags, d.method, id_key);
  w.key("anomaly_parameters");
  w.begin_object();
  w.key("method");
  w.value(d.method);
  w.key("threshold");
  w.value(threshold_of(d));
  w.end_object();
  w.key("change_points");
  w.begin_array();
  for (const auto& c : a.cps) {
    w.begin_object();
    w.key("index");
    w.value(c.index);
    w.key(id_key);
    w.value(s.lines[c.index]);
    w.key("timestamp");
    w.value(s.stamps[c.index]);
    if (!s.notes.empty()) {
      w.key("git_commit");
      w.value(s.notes[c.index]);
    }
    w.key("kind");
    w.value(an::is_variance_change(c) ? "variance" : "level");
    number_members(w, {{"spread_ratio", spread_ratio(c)},
                       {"mean_before", c.mean_before},
                       {"mean_after", c.mean_after},
                       {"stddev_before", c.stddev_before},
                       {"stddev_after", c.stddev_after},
                       {"relative_change", c.relative_change},
                       {"p_value", c.p_value}});
    w.end_object();
  }
  w.end_array();
  w.key("forecast");
  w.begin_object();
  w.key("method");
  w.value(o.season ? "holt-winters" : "holt");
  w.key("season");
  w.value(o.season);
  number_members(w, {{"alpha", a.fc.alpha},
                     {"beta", a.fc.beta},
                     {"gamma", a.fc.gamma},
                     {"sigma", a.fc.sigma},
                     {"interval", a.fc.interval}});
  for (const auto& [k, v] : {std::pair{"mean", &a.fc.mean}, {"lower", &a.fc.lower}, {"upper", &a.fc.upper}}) {
    w.key(k);
    w.begin_array();
    for (double x : *v) w.value(x);
    w.end_array();
  }
  if (o.limit) {
    w.key("limit");
    w.value(*o.limit);
    w.key("steps_to_limit");
    if (a.steps) {
      w.value(*a.steps);
    } else {
      w.null();
    }
  }
  w.end_object();
}

}  // namespace

std::string analyze_report(const Series& s, const AnalyzeOptions& o, bool json) {
  DetectOptions d = o.detect;
  d.offline = true;
  check_detect_options(d);
  const Analysis a = analyse(s, o, d, "point");
  std::string out;
  if (!json) {
    out += "series: " + source_name(d) + ": " + std::to_string(s.values.size()) + " points from " +
           s.stamps.front() + " to " + s.stamps.back();
    if (s.missing != 0) out += " (" + std::to_string(s.missing) + " missing skipped)";
    out += "\n" + analysis_text(s, o, d, a, "point", plain);
    return out;
  }
  JsonWriter w(out);
  w.begin_object();
  w.key("series");
  w.begin_object();
  write_source(w, d);
  w.key("points");
  w.value(s.values.size());
  w.key("missing");
  w.value(s.missing);
  w.key("first");
  w.value(s.stamps.front());
  w.key("last");
  w.value(s.stamps.back());
  w.key("median_step_seconds");
  w.value(a.step_s);
  w.end_object();
  analysis_json(w, s, o, d, a, point_key(d));
  w.end_object();
  out += '\n';
  return out;
}

namespace {

struct Metric {
  const char* name;
  const char* unit;  // "s" or "bytes"
  double (*get)(const monitor::RunRecord&);
};

constexpr double ns_to_s(std::int64_t ns) { return static_cast<double>(ns) / 1e9; }

const Metric kMetrics[] = {
    {"wall", "s", [](const monitor::RunRecord& r) { return ns_to_s(r.duration_ns); }},
    {"cpu_user", "s",
     [](const monitor::RunRecord& r) { return ns_to_s(static_cast<std::int64_t>(r.user_cpu_ns)); }},
    {"cpu_sys", "s",
     [](const monitor::RunRecord& r) { return ns_to_s(static_cast<std::int64_t>(r.sys_cpu_ns)); }},
    {"max_rss", "bytes", [](const monitor::RunRecord& r) { return static_cast<double>(r.max_rss_bytes); }},
    // The tree's peak as exactly as the run measured it: a cgroup's peak charge (shared
    // pages once, no overlap missed between samples), else the largest sampled RSS sum.
    {"tree_peak_rss", "bytes",
     [](const monitor::RunRecord& r) {
       const bool exact = r.tree_source.rfind("cgroup", 0) == 0 && r.tree_peak_memory_bytes != 0;
       return static_cast<double>(exact ? r.tree_peak_memory_bytes : r.peak_tree_rss_bytes);
     }},
    {"read_bytes", "bytes", [](const monitor::RunRecord& r) { return static_cast<double>(r.read_bytes); }},
    {"write_bytes", "bytes", [](const monitor::RunRecord& r) { return static_cast<double>(r.write_bytes); }},
};

std::string seconds_text(double v) { return unit_value_text("s", v); }
std::string bytes_text(double v) { return unit_value_text("bytes", v); }

// Every run gets one, so it is written by hand: gmtime_r and strftime's time-zone
// lookups cost more than the rest of reading a run. Nanoseconds in 64 bits span the
// years 1677 to 2262: always four digits.
std::string iso_utc(std::int64_t unix_ns) {
  namespace ch = std::chrono;
  const ch::sys_seconds t{ch::seconds{unix_ns / 1000000000}};
  const auto day = ch::floor<ch::days>(t);
  const ch::year_month_day ymd{day};
  const int year = static_cast<int>(ymd.year());
  char buf[32];
  const auto secs = static_cast<int>((t - day).count());
  const int fields[] = {year / 100,
                        year % 100,
                        static_cast<int>(static_cast<unsigned>(ymd.month())),
                        static_cast<int>(static_cast<unsigned>(ymd.day())),
                        secs / 3600,
                        secs / 60 % 60,
                        secs % 60};
  const char seps[] = {'\0', '-', '-', 'T', ':', ':', 'Z'};
  char* p = buf;
  for (std::size_t i = 0; i < 7; ++i) {
    *p++ = static_cast<char>('0' + fields[i] / 10);
    *p++ = static_cast<char>('0' + fields[i] % 10);
    if (seps[i] != '\0') *p++ = seps[i];
  }
  return {buf, p};
}

// The latest `latest` values against up to `baseline` values before them that are not
// anomalies (a pinned run ends the baseline and always counts); nullopt when there are
// too few runs for both.
std::optional<RegressionCheck> regression_of(const Series& s, const std::vector<Flag>& flags,
                                             const HistoryAnalyzeOptions& o) {
  const std::size_t n = s.values.size();
  std::size_t end = n >= o.latest ? n - o.latest : 0;
  std::optional<std::size_t> pin;
  if (o.pinned) {
    const auto it = std::find(s.lines.begin(), s.lines.end(), static_cast<std::size_t>(*o.pinned));
    if (it == s.lines.end()) {
      throw InputError("label '" + o.label + "': the pinned baseline run " + std::to_string(*o.pinned) +
                       " is not among the successful runs read (raise --runs, or spyglass baseline unpin)");
    }
    pin = static_cast<std::size_t>(it - s.lines.begin());
    end = std::min(end, *pin + 1);
  }
  if (n < o.latest + 3) return std::nullopt;
  std::vector<bool> anomalous(n, false);
  for (const auto& f : flags) anomalous[f.index] = true;
  if (pin && *pin < end) anomalous[*pin] = false;
  std::vector<double> base;
  std::vector<std::size_t> indices;
  for (std::size_t i = end; i-- > 0 && base.size() < o.baseline;) {
    if (!anomalous[i]) {
      base.push_back(s.values[i]);
      indices.push_back(i);
    }
  }
  if (base.size() < 3) return std::nullopt;
  const std::vector<double> cur(s.values.end() - static_cast<std::ptrdiff_t>(o.latest), s.values.end());
  std::reverse(indices.begin(), indices.end());
  return RegressionCheck{an::compare(base, cur), cur.size(), base.size(), o.pinned, std::move(indices)};
}

// The built-in metric `name`; nullptr for a custom metric's name. Throws InputError for a
// name that can be neither.
const Metric* builtin_metric(const std::string& name) {
  for (const auto& m : kMetrics) {
    if (name == m.name) return &m;
  }
  if (monitor::valid_run_metric_name(name)) return nullptr;
  std::string all;
  for (const auto& m : kMetrics) all += (all.empty() ? "" : ", ") + std::string(m.name);
  throw InputError("no metric '" + name + "' (metrics: " + all +
                   ", or the name of a custom metric the runs recorded)");
}

// Custom metric `name` of `r`; NaN when the run did not record it.
double custom_metric(const monitor::RunRecord& r, const std::string& name) {
  for (const auto& m : r.metrics) {
    if (m.name == name) return m.value;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

// `s` without its points whose value is NaN (runs that did not record a custom metric),
// and `ids` likewise when given.
void drop_missing(Series& s, std::vector<std::int64_t>* ids) {
  // A series without stamps (run_series without `stamped`) has empty stamps, times and notes.
  std::size_t k = 0;
  for (std::size_t i = 0; i < s.values.size(); ++i) {
    if (std::isnan(s.values[i])) continue;
    if (i < s.stamps.size()) s.stamps[k] = std::move(s.stamps[i]);
    if (i < s.times.size()) s.times[k] = s.times[i];
    if (i < s.notes.size()) s.notes[k] = std::move(s.notes[i]);
    s.values[k] = s.values[i];
    s.lines[k] = s.lines[i];
    if (ids != nullptr) (*ids)[k] = (*ids)[i];
    ++k;
  }
  s.stamps.resize(std::min(s.stamps.size(), k));
  s.times.resize(std::min(s.times.size(), k));
  s.notes.resize(std::min(s.notes.size(), k));
  s.values.resize(k);
  s.lines.resize(k);
  if (ids != nullptr) ids->resize(k);
}

Formatter formatter(const std::string& unit) {
  if (unit == "s") return seconds_text;
  if (unit == "bytes") return bytes_text;
  return plain;
}

// The successful runs of `newest_first`, oldest first, as a series without values (its
// `missing` counts the others); `runs` gets the same runs. Without `stamped`, only the
// lines (run ids): the checks read no times or commits, and writing them costs more
// than the checks.
Series run_series(std::span<const monitor::RunRecord> newest_first,
                  std::vector<const monitor::RunRecord*>& runs, bool stamped = true) {
  Series base;
  for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) {
    if (!successful_run(*it)) {
      ++base.missing;
      continue;
    }
    runs.push_back(&*it);
    base.lines.push_back(static_cast<std::size_t>(it->id));
    if (!stamped) continue;
    base.stamps.push_back(iso_utc(it->start_unix_ns));
    base.times.push_back(ns_to_s(it->start_unix_ns));
    base.notes.push_back(it->git_commit);
  }
  return base;
}

}  // namespace

bool successful_run(const monitor::RunRecord& r) {
  return r.exit_code == 0 && r.kill_reason.empty() && r.error.empty();
}

double history_metric(const monitor::RunRecord& r, const std::string& name) {
  const Metric* m = builtin_metric(name);
  return m != nullptr ? m->get(r) : custom_metric(r, name);
}

std::string metric_unit(const std::string& name, const std::vector<monitor::RunRecord>& runs) {
  if (const Metric* m = builtin_metric(name)) return m->unit;
  for (const auto& r : runs) {
    for (const auto& m : r.metrics) {
      if (m.name == name) return m.unit == "B" ? "bytes" : m.unit;
    }
  }
  return {};
}

std::string metric_text(const std::string& name, double v, const std::vector<monitor::RunRecord>& runs) {
  return unit_value_text(metric_unit(name, runs), v);
}

namespace {

// Metric `name` of the successful ones of `newest_first`, oldest first; `ids` gets their
// run ids.
Series metric_series(std::span<const monitor::RunRecord> newest_first, const std::string& name,
                     std::vector<std::int64_t>& ids, bool stamped = true) {
  const Metric* m = builtin_metric(name);
  std::vector<const monitor::RunRecord*> runs;
  Series s = run_series(newest_first, runs, stamped);
  for (const auto* r : runs) {
    s.values.push_back(m != nullptr ? m->get(*r) : custom_metric(*r, name));
    ids.push_back(r->id);
  }
  if (m == nullptr) drop_missing(s, &ids);  // a run that did not record it is no point, not a zero
  return s;
}

// The anomaly options of `o`, run on the whole series as analyze --label runs them.
DetectOptions whole_series(const HistoryAnalyzeOptions& o) {
  DetectOptions d = o.analysis.detect;
  d.offline = true;
  check_detect_options(d);
  return d;
}

}  // namespace

MetricCheck check_metric(std::span<const monitor::RunRecord> newest_first, const std::string& name,
                         const HistoryAnalyzeOptions& o, MetricChecks which) {
  const DetectOptions d = whole_series(o);
  MetricCheck out;
  const Series s = metric_series(newest_first, name, out.run_ids, false);
  if (s.values.size() < 3) return out;
  if (which != MetricChecks::regression)
    out.change_points = an::merge_blips(s.values, an::change_points(s.values)).changes;
  if (which != MetricChecks::change_points) out.regression = regression_of(s, detect(s, d), o);
  return out;
}

MetricAnalysis analyze_metric(const std::vector<monitor::RunRecord>& newest_first, const std::string& name,
                              const HistoryAnalyzeOptions& o) {
  const DetectOptions d = whole_series(o);
  MetricAnalysis out;
  const Series s = metric_series(newest_first, name, out.run_ids);
  out.values = s.values;
  if (s.values.size() < 3) return out;
  const Analysis a = analyse(s, o.analysis, d, "run", false);
  out.analysed = true;
  out.trend = a.trend;
  for (const auto& f : a.flags) out.anomalies.emplace_back(f.index, f.score);
  out.change_points = a.cps;
  out.regression = regression_of(s, a.flags, o);
  return out;
}

std::optional<analytics::Trend> metric_trend(const std::vector<monitor::RunRecord>& newest_first,
                                             const std::string& name) {
  std::vector<std::int64_t> ids;
  const Series s = metric_series(newest_first, name, ids);
  if (s.values.size() < 3) return std::nullopt;
  return series_trend(s, "run");
}

std::vector<std::string> history_metric_names(const std::vector<monitor::RunRecord>& runs) {
  std::vector<std::string> out;
  for (const auto& m : kMetrics) out.emplace_back(m.name);
  std::vector<std::string> custom;
  for (const auto& r : runs) {
    for (const auto& m : r.metrics) custom.push_back(m.name);
  }
  std::sort(custom.begin(), custom.end());
  custom.erase(std::unique(custom.begin(), custom.end()), custom.end());
  out.insert(out.end(), custom.begin(), custom.end());
  return out;
}

void check_history_options(const HistoryAnalyzeOptions& o) {
  DetectOptions d = o.analysis.detect;
  d.offline = true;
  check_detect_options(d);
  for (const auto& name : o.metrics) {
    try {
      builtin_metric(name);
    } catch (const InputError& e) {
      throw InputError(std::string("--metric: ") + e.what());
    }
  }
}

std::string history_report(const std::vector<monitor::RunRecord>& newest_first,
                           const HistoryAnalyzeOptions& o, bool json) {
  check_history_options(o);
  DetectOptions d = o.analysis.detect;
  d.offline = true;
  // The built-in metrics, then the custom ones any run of the label recorded.
  std::vector<std::string> metrics;
  for (auto& m : history_metric_names(newest_first)) {
    if (o.metrics.empty() || std::find(o.metrics.begin(), o.metrics.end(), m) != o.metrics.end())
      metrics.push_back(std::move(m));
  }
  // A name given by --metric or --limit that no run recorded: told, not skipped quietly.
  std::vector<std::string> named = o.metrics;
  for (const auto& [m, v] : o.limits) named.push_back(m);
  for (const auto& m : named) {
    if (std::find(metrics.begin(), metrics.end(), m) != metrics.end()) continue;
    std::string list;
    for (const auto& n : history_metric_names(newest_first)) list += (list.empty() ? "" : ", ") + n;
    throw InputError("label '" + o.label + "': no metric '" + m + "' in its runs (metrics: " + list + ")");
  }
  std::vector<const monitor::RunRecord*> runs;
  // One series for every metric: only its values change from one to the next, where a
  // copy per metric copied every run's stamp and commit again.
  Series s = run_series(newest_first, runs);
  const Series& base = s;
  const std::size_t excluded = base.missing;
  if (runs.size() < 3) {
    throw InputError("label '" + o.label + "': needs at least 3 successful runs to analyse, found " +
                     std::to_string(runs.size()));
  }

  std::string out;
  JsonWriter w(out);
  if (json) {
    w.begin_object();
    w.key("label");
    w.value(o.label);
    w.key("runs");
    w.value(runs.size());
    w.key("excluded_runs");
    w.value(excluded);
    w.key("first");
    w.value(base.stamps.front());
    w.key("last");
    w.value(base.stamps.back());
    w.key("metrics");
    w.begin_object();
  } else {
    out += "label " + o.label + ": " + std::to_string(runs.size()) + " successful runs from " +
           base.stamps.front() + " to " + base.stamps.back();
    if (excluded != 0) out += " (" + std::to_string(excluded) + " failed or killed left out)";
    out += "\n";
  }
  // Each metric's value per successful run (NaN: a custom metric the run did not record).
  std::vector<std::pair<std::string, std::vector<double>>> columns;
  AnalyzeOptions per_metric = o.analysis;  // with each metric's own limit
  Series recorded;                         // the runs that recorded a custom metric
  for (const std::string& name : metrics) {
    const Metric* m = builtin_metric(name);
    s.values.clear();
    for (const auto* r : runs) s.values.push_back(m != nullptr ? m->get(*r) : custom_metric(*r, name));
    columns.emplace_back(name, s.values);
    const Series* series = &s;
    if (m == nullptr &&
        std::any_of(s.values.begin(), s.values.end(), [](double v) { return std::isnan(v); })) {
      recorded = s;
      drop_missing(recorded, nullptr);
      series = &recorded;
    }
    if (series->values.size() < 3) {
      if (!json) {
        out += "\n== " + name + " ==\nrecorded by " + std::to_string(series->values.size()) +
               " successful runs: too few to analyse (3 needed)\n";
      }
      continue;
    }
    per_metric.limit.reset();
    for (const auto& [limited, v] : o.limits) {
      if (limited == name) per_metric.limit = v;
    }
    // A built-in metric (a duration, a size) is >= 0; a custom one may be anything.
    const Analysis a = analyse(*series, per_metric, d, "run", true, m != nullptr);
    const auto reg = regression_of(*series, a.flags, o);
    const std::string unit = metric_unit(name, newest_first);
    const Formatter f = formatter(unit);
    if (json) {
      w.key(name);
      w.begin_object();
      w.key("unit");
      w.value(unit);
      analysis_json(w, *series, per_metric, d, a, "run_id");
      w.key("regression");
      if (reg) {
        w.begin_object();
        w.key("current_runs");
        w.value(reg->current);
        w.key("baseline_runs");
        w.value(reg->baseline);
        w.key("pinned_run");
        if (reg->pinned) {
          w.value(*reg->pinned);
        } else {
          w.null();
        }
        number_members(w, {{"current_median", reg->result.current_median},
                           {"baseline_median", reg->result.baseline_median},
                           {"relative_change", reg->result.relative_change},
                           {"mann_whitney_u", reg->result.mann_whitney.u},
                           {"mann_whitney_p", reg->result.mann_whitney.p_value}});
        w.key("welch_p");
        if (reg->result.welch) {
          w.value(reg->result.welch->p_value);
        } else {
          w.null();
        }
        w.key("regressed");
        w.value(reg->result.regressed);
        w.key("improved");
        w.value(reg->result.improved);
        w.end_object();
      } else {
        w.null();
      }
      w.end_object();
    } else {
      out += "\n== " + name + " ==\n" + analysis_text(*series, per_metric, d, a, "run", f);
      if (reg) {
        const auto& r = reg->result;
        out += "regression: latest " + std::to_string(reg->current) + " runs vs " +
               std::to_string(reg->baseline) +
               (reg->pinned ? " up to pinned run " + std::to_string(*reg->pinned) : std::string(" before")) +
               ": median " + f(r.baseline_median) + " -> " + f(r.current_median) + " (" +
               pct(r.relative_change) + "), Mann-Whitney p " + num(r.mann_whitney.p_value, 2) +
               (r.welch ? ", Welch p " + num(r.welch->p_value, 2) : std::string()) + ": " +
               (r.regressed  ? "REGRESSION"
                : r.improved ? "improvement"
                             : "no significant change") +
               "\n";
      }
    }
  }
  // Correlation between metrics, strongest (by |Spearman|) first; constant metrics have none.
  // A custom metric pairs over the runs that recorded it (at least 3).
  struct Pair {
    std::string a, b;
    an::Correlation pearson, spearman;
  };
  std::vector<Pair> pairs;
  std::vector<double> xs, ys;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    for (std::size_t j = i + 1; j < columns.size(); ++j) {
      const std::vector<double>* x = &columns[i].second;
      const std::vector<double>* y = &columns[j].second;
      const auto nan = [](double v) { return std::isnan(v); };
      if (std::any_of(x->begin(), x->end(), nan) || std::any_of(y->begin(), y->end(), nan)) {
        xs.clear();
        ys.clear();
        for (std::size_t k = 0; k < x->size(); ++k) {
          if (std::isnan((*x)[k]) || std::isnan((*y)[k])) continue;
          xs.push_back((*x)[k]);
          ys.push_back((*y)[k]);
        }
        if (xs.size() < 3) continue;
        x = &xs;
        y = &ys;
      }
      if (std::adjacent_find(x->begin(), x->end(), std::not_equal_to<>()) == x->end() ||
          std::adjacent_find(y->begin(), y->end(), std::not_equal_to<>()) == y->end()) {
        continue;
      }
      pairs.push_back({columns[i].first, columns[j].first, an::pearson(*x, *y), an::spearman(*x, *y)});
    }
  }
  std::stable_sort(pairs.begin(), pairs.end(), [](const Pair& p, const Pair& q) {
    return std::fabs(p.spearman.r) > std::fabs(q.spearman.r);
  });
  if (json) {
    w.end_object();
    w.key("correlations");
    w.begin_array();
    for (const auto& p : pairs) {
      w.begin_object();
      w.key("a");
      w.value(p.a);
      w.key("b");
      w.value(p.b);
      number_members(w, {{"pearson", p.pearson.r},
                         {"pearson_p", p.pearson.p_value},
                         {"spearman", p.spearman.r},
                         {"spearman_p", p.spearman.p_value}});
      w.end_object();
    }
    w.end_array();
    w.end_object();
    out += '\n';
  } else if (!pairs.empty()) {
    out += "\ncorrelations (strongest first):\n";
    for (const auto& p : pairs) {
      out += "  " + std::string(p.a) + " ~ " + p.b + ": Spearman " + num(p.spearman.r, 3) + " (p " +
             num(p.spearman.p_value, 2) + "), Pearson " + num(p.pearson.r, 3) + " (p " +
             num(p.pearson.p_value, 2) + ")\n";
    }
  }
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::cli
