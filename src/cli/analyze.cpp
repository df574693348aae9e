// `spyglass detect` and `spyglass analyze --csv`.

#include "analyze.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <vector>

#include "spyglass/json.hpp"
#include "spyglass/monitor/analytics.hpp"
#include "spyglass/monitor/detectors.hpp"

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

std::string num(double v, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string pct(double v) { return (v >= 0 ? "+" : "") + num(100 * v, 3) + "%"; }

void write_source(JsonWriter& w, const DetectOptions& o) {
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

void write_flags(JsonWriter& w, const Series& s, const std::vector<Flag>& flags, const std::string& method) {
  w.begin_array();
  for (const auto& f : flags) {
    w.begin_object();
    w.key("timestamp");
    w.value(s.stamps[f.index]);
    w.key("value");
    w.value(s.values[f.index]);
    w.key("score");
    w.value(f.score);  // null when the past had no spread at all (an infinite score)
    w.key("method");
    w.value(method);
    w.key("line");
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
    write_flags(w, s, flags, o.method);
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

std::string analyze_report(const Series& s, const AnalyzeOptions& o, bool json) {
  DetectOptions d = o.detect;
  d.offline = true;
  check_detect_options(d);
  if (s.values.size() < 3) {
    throw InputError(d.source + ": needs at least 3 points to analyse, found " +
                     std::to_string(s.values.size()));
  }
  if (o.season != 0 && s.values.size() < 2 * o.season) {
    throw InputError("--season " + std::to_string(o.season) + ": needs two full seasons (" +
                     std::to_string(2 * o.season) + " points), found " + std::to_string(s.values.size()));
  }
  const auto sum = an::summarize(s.values);
  // Times relative to the first point: the per-time fit is then exact for epoch stamps.
  std::vector<double> rel(s.times.size());
  for (std::size_t i = 0; i < rel.size(); ++i) rel[i] = s.times[i] - s.times.front();
  const bool timed = rel.back() > 0;
  const auto tr = an::trend(s.values, timed ? std::span<const double>(rel) : std::span<const double>{}, 0.05);
  const auto flags = detect(s, d);
  const auto cps = an::change_points(s.values);
  const auto fc =
      o.season == 0 ? an::holt(s.values, o.horizon) : an::holt_winters(s.values, o.season, o.horizon);
  std::optional<std::size_t> steps;
  if (o.limit) {
    steps = an::steps_to_limit(fc, *o.limit);
    if (!steps && !fc.mean.empty()) {
      const auto more = an::steps_to_limit(fc.mean.back(), fc.slope, *o.limit);
      if (more) steps = fc.mean.size() + *more;
    }
  }
  const double step_s = median_step(s);

  std::string out;
  if (!json) {
    out += "series: " + d.source + ", column " + d.value_column + ": " + std::to_string(s.values.size()) +
           " points from " + s.stamps.front() + " to " + s.stamps.back();
    if (s.missing != 0) out += " (" + std::to_string(s.missing) + " missing skipped)";
    out += "\nsummary: mean " + num(sum.mean) + "  median " + num(sum.median) + "  stddev " +
           num(sum.stddev) + "  min " + num(sum.min) + "  max " + num(sum.max) + "  MAD " + num(sum.mad) +
           "\n";
    out += "trend: " + tr.verdict;
    if (tr.per_time) out += "; " + num(tr.per_time->slope * 86400) + " per day";
    out += "\nanomalies: " + std::to_string(flags.size()) + " (" + describe_method(d) + ")\n" +
           flags_text(s, flags);
    out += "change points: " + std::to_string(cps.size()) + "\n";
    for (const auto& c : cps) {
      out += "  at " + s.stamps[c.index] + " (point " + std::to_string(c.index) + "): mean " +
             num(c.mean_before) + " -> " + num(c.mean_after) + " (" + pct(c.relative_change) + "), stddev " +
             num(c.stddev_before, 3) + " -> " + num(c.stddev_after, 3) + ", p " + num(c.p_value, 2) + "\n";
    }
    out += "forecast (" +
           std::string(o.season ? "Holt-Winters, season " + std::to_string(o.season) : "Holt") + ", alpha " +
           num(fc.alpha, 3) + " beta " + num(fc.beta, 3) +
           (o.season ? " gamma " + num(fc.gamma, 3) : std::string()) + "):";
    if (!fc.mean.empty()) {
      out += " in " + std::to_string(fc.mean.size()) + " points " + num(fc.mean.back()) + " (" +
             num(100 * fc.interval, 3) + "% interval " + num(fc.lower.back()) + " .. " +
             num(fc.upper.back()) + ")";
    }
    out += "\n";
    if (o.limit) {
      out += "  limit " + num(*o.limit) + ": ";
      if (steps) {
        out += "reached in about " + std::to_string(*steps) + " points";
        if (step_s > 0) out += " (" + duration_words(static_cast<double>(*steps) * step_s) + ")";
      } else {
        out += "not reached at the current trend";
      }
      out += "\n";
    }
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
  w.value(step_s);
  w.end_object();
  w.key("summary");
  w.begin_object();
  for (const auto& [k, v] : {std::pair{"mean", sum.mean},
                             {"median", sum.median},
                             {"stddev", sum.stddev},
                             {"min", sum.min},
                             {"q1", sum.q1},
                             {"q3", sum.q3},
                             {"max", sum.max},
                             {"mad", sum.mad}}) {
    w.key(k);
    w.value(v);
  }
  w.end_object();
  w.key("trend");
  w.begin_object();
  w.key("slope_per_point");
  w.value(tr.per_index.slope);
  w.key("intercept");
  w.value(tr.per_index.intercept);
  w.key("r2");
  w.value(tr.per_index.r2);
  w.key("p_value");
  w.value(tr.per_index.p_value);
  w.key("relative_slope");
  w.value(tr.relative_slope);
  w.key("slope_per_day");
  if (tr.per_time) {
    w.value(tr.per_time->slope * 86400);
  } else {
    w.null();
  }
  w.key("significant");
  w.value(tr.significant);
  w.key("verdict");
  w.value(tr.verdict);
  w.end_object();
  w.key("anomalies");
  write_flags(w, s, flags, d.method);
  w.key("anomaly_parameters");
  w.begin_object();
  w.key("method");
  w.value(d.method);
  w.key("threshold");
  w.value(threshold_of(d));
  w.end_object();
  w.key("change_points");
  w.begin_array();
  for (const auto& c : cps) {
    w.begin_object();
    w.key("index");
    w.value(c.index);
    w.key("timestamp");
    w.value(s.stamps[c.index]);
    for (const auto& [k, v] : {std::pair{"mean_before", c.mean_before},
                               {"mean_after", c.mean_after},
                               {"stddev_before", c.stddev_before},
                               {"stddev_after", c.stddev_after},
                               {"relative_change", c.relative_change},
                               {"p_value", c.p_value}}) {
      w.key(k);
      w.value(v);
    }
    w.end_object();
  }
  w.end_array();
  w.key("forecast");
  w.begin_object();
  w.key("method");
  w.value(o.season ? "holt-winters" : "holt");
  w.key("season");
  w.value(o.season);
  for (const auto& [k, v] : {std::pair{"alpha", fc.alpha},
                             {"beta", fc.beta},
                             {"gamma", fc.gamma},
                             {"sigma", fc.sigma},
                             {"interval", fc.interval}}) {
    w.key(k);
    w.value(v);
  }
  for (const auto& [k, v] : {std::pair{"mean", &fc.mean}, {"lower", &fc.lower}, {"upper", &fc.upper}}) {
    w.key(k);
    w.begin_array();
    for (double x : *v) w.value(x);
    w.end_array();
  }
  if (o.limit) {
    w.key("limit");
    w.value(*o.limit);
    w.key("steps_to_limit");
    if (steps) {
      w.value(*steps);
    } else {
      w.null();
    }
  }
  w.end_object();
  w.end_object();
  out += '\n';
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::cli
