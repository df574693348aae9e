// The pages over the run history: one renderer for `spyglass serve` and `spyglass report`.

#include "dashboard.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <future>
#include <optional>
#include <vector>

#include "report.hpp"
#include "spyglass/monitor/analytics.hpp"
#include "spyglass/utf8.hpp"

namespace SPYGLASS_NAMESPACE::cli {

namespace {

namespace mon = monitor;

// ---------------------------------------------------------------------------------------
// HTML pieces

constexpr const char* kStyle =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1000px;color:#222;padding:0 1em}"
    "h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}nav a{margin-right:1em}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{padding:.15em .6em;text-align:left;"
    "border-bottom:1px solid #ddd}td.n{text-align:right}"
    ".bad{color:#b00}.ok{color:#070}pre{background:#f4f4f4;padding:.5em;overflow:auto;max-height:20em}"
    "figure{margin:1em 0}figcaption{font-weight:600}svg{background:#fff;border:1px solid #ddd}"
    "svg text{font:11px sans-serif;fill:#555}.axis{stroke:#999}.line{fill:none;stroke:#36c;stroke-width:1}"
    ".pt{fill:#36c}.anomaly{fill:#e60;stroke:#a30}.change-point{stroke:#a0a;stroke-width:2;"
    "stroke-dasharray:4 3}.baseline-band{fill:#3a3;fill-opacity:.15}.baseline-median{stroke:#3a3}"
    ".regression{fill:#d00;fill-opacity:.12}.improvement{fill:#0a0;fill-opacity:.12}"
    ".detection{stroke:#e60;stroke-width:2}.legend{font-size:12px;color:#555}"
    ".limit{stroke:#b00;stroke-width:1.5;stroke-dasharray:6 3}svg text.limit-label{fill:#b00}";

void esc(std::string& out, std::string_view s) { append_xml_escaped(s, out); }

std::string escaped(std::string_view s) {
  std::string out;
  append_xml_escaped(s, out);
  return out;
}

// A value for a data attribute: enough digits to compare with the stored number.
std::string num(double v) {
  if (!std::isfinite(v)) return v > 0 ? "Infinity" : v < 0 ? "-Infinity" : "NaN";
  return format_number(v, 10);
}

// A pixel coordinate.
std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string url_encode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

void open_page(std::string& out, const std::string& title, bool nav) {
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>";
  esc(out, title);
  out +=
      "</title><link rel=\"icon\" href=\"data:,\"><meta name=\"viewport\" "
      "content=\"width=device-width\"><style>";
  out += kStyle;
  out += "</style></head><body>\n";
  if (nav) out += "<nav><a href=\"/\">labels</a><a href=\"/alerts\">alerts</a></nav>\n";
  out += "<h1>";
  esc(out, title);
  out += "</h1>\n";
}

void close_page(std::string& out) { out += "</body></html>\n"; }

Page error_page(int status, const std::string& message) {
  Page p{status, {}};
  open_page(p.body, status == 404 ? "Not found" : "Bad request", true);
  p.body += "<p class=\"error\">";
  esc(p.body, message);
  p.body += "</p>\n";
  close_page(p.body);
  return p;
}

std::string run_link(std::int64_t id, bool links) {
  const std::string n = std::to_string(id);
  return links ? "<a href=\"/run?id=" + n + "\">#" + n + "</a>" : "#" + n;
}

std::string label_link(const std::string& label, bool links) {
  return links ? "<a href=\"/label?name=" + url_encode(label) + "\">" + escaped(label) + "</a>"
               : escaped(label);
}

// How a run ended, in a word or two, and whether that is a success.
std::string status_of(const mon::RunRecord& r) {
  if (successful_run(r)) return "ok";
  if (!r.error.empty()) return "not started: " + r.error;
  if (!r.kill_reason.empty()) return "killed (" + r.kill_reason + ")";
  if (r.signal != 0) return "signal " + std::to_string(r.signal);
  return "exit " + std::to_string(r.exit_code);
}

std::string status_cell(const mon::RunRecord& r) {
  const bool ok = successful_run(r);
  return std::string("<td class=\"") + (ok ? "ok" : "bad") + "\" data-status=\"" + (ok ? "ok" : "failed") +
         "\">" + escaped(status_of(r)) + "</td>";
}

// ---------------------------------------------------------------------------------------
// Charts: inline SVG, one element per point and per mark

constexpr double kW = 760, kH = 210, kLeft = 78, kRight = 12, kTop = 10, kBottom = 26;

struct Scale {
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  double x(double v) const { return kLeft + (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5) * (kW - kLeft - kRight); }
  double y(double v) const {
    return kH - kBottom - (y1 > y0 ? (v - y0) / (y1 - y0) : 0.5) * (kH - kTop - kBottom);
  }
};

// A scale from 0 (values are durations, sizes or percentages) to a little above the
// largest of `ys` and `extra`.
Scale scale_for(double x0, double x1, const std::vector<double>& ys, double extra = 0) {
  double top = extra;
  for (double v : ys) {
    if (std::isfinite(v)) top = std::max(top, v);
  }
  return {x0, x1, 0, top > 0 ? top * 1.08 : 1};
}

using Fmt = std::string (*)(double);

std::string seconds_label(double v) { return format_seconds(v); }
std::string bytes_label(double v) {
  return format_bytes(static_cast<std::uint64_t>(std::llround(std::max(0.0, v))));
}
std::string percent_label(double v) { return format_number(v, 3) + "%"; }
std::string plain_label(double v) { return format_number(v, 4); }

// Opens a chart: frame, axes, three value ticks and the x caption.
void open_chart(std::string& out, const std::string& metric, const std::string& title, const Scale& s,
                Fmt fmt, const std::string& x_caption) {
  out += "<figure class=\"chart\" data-metric=\"" + metric + "\"><figcaption>";
  esc(out, title);
  out += "</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + px(kW) + "\" height=\"" +
         px(kH) + "\" viewBox=\"0 0 " + px(kW) + " " + px(kH) + "\" role=\"img\">";
  out += "<line class=\"axis\" x1=\"" + px(kLeft) + "\" y1=\"" + px(kH - kBottom) + "\" x2=\"" +
         px(kW - kRight) + "\" y2=\"" + px(kH - kBottom) + "\"/><line class=\"axis\" x1=\"" + px(kLeft) +
         "\" y1=\"" + px(kTop) + "\" x2=\"" + px(kLeft) + "\" y2=\"" + px(kH - kBottom) + "\"/>";
  for (const double f : {0.0, 0.5, 1.0}) {
    const double v = s.y0 + f * (s.y1 - s.y0);
    out += "<text x=\"" + px(kLeft - 4) + "\" y=\"" + px(s.y(v) + 4) + "\" text-anchor=\"end\">";
    esc(out, fmt(v));
    out += "</text>";
  }
  out += "<text x=\"" + px((kLeft + kW - kRight) / 2) + "\" y=\"" + px(kH - 6) + "\" text-anchor=\"middle\">";
  esc(out, x_caption);
  out += "</text>";
}

void close_chart(std::string& out) { out += "</svg></figure>\n"; }

// The line through the points (drawn under them).
void polyline(std::string& out, const Scale& s, const std::vector<double>& xs,
              const std::vector<double>& ys) {
  if (xs.size() < 2) return;
  out += "<polyline class=\"line\" points=\"";
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (i != 0) out += ' ';
    out += px(s.x(xs[i])) + "," + px(s.y(ys[i]));
  }
  out += "\"/>";
}

// ---------------------------------------------------------------------------------------
// A label's page

struct MetricView {
  std::string name;
  std::string title;
  std::string unit;  // "s", "bytes" or "" (a custom metric's plain number)
};

const MetricView kMetricViews[] = {
    {"wall", "Wall time", "s"},
    {"cpu_user", "User CPU", "s"},
    {"cpu_sys", "System CPU", "s"},
    {"max_rss", "Peak RSS (largest process)", "bytes"},
    {"tree_peak_rss", "Peak RSS of the tree", "bytes"},
    {"read_bytes", "Bytes read", "bytes"},
    {"write_bytes", "Bytes written", "bytes"},
};

// One metric over the runs, with its anomalies, change points, baseline band and the
// latest runs' verdict marked.
void metric_chart(std::string& out, const MetricAnalysis& a, const MetricView& m) {
  const Fmt fmt = m.unit == "s" ? seconds_label : m.unit == "bytes" ? bytes_label : plain_label;
  const std::size_t n = a.values.size();
  std::vector<double> xs(n);
  for (std::size_t i = 0; i < n; ++i) xs[i] = static_cast<double>(i);
  const Scale s = scale_for(0, n > 1 ? static_cast<double>(n - 1) : 1, a.values);
  open_chart(out, m.name, m.title, s, fmt, "successful runs, oldest to newest (" + std::to_string(n) + ")");

  std::vector<double> base;
  if (a.regression) {
    const auto& reg = *a.regression;
    for (const std::size_t i : reg.baseline_indices) base.push_back(a.values[i]);
    // The baseline band: the interquartile range of the baseline runs, from the first of
    // them to the newest run, with the baseline median.
    const double q1 = analytics::quantile(base, 0.25), q3 = analytics::quantile(base, 0.75);
    const double bx0 = s.x(static_cast<double>(reg.baseline_indices.front()));
    const double bx1 = s.x(xs.back());
    out += "<rect class=\"baseline-band\" x=\"" + px(bx0) + "\" y=\"" + px(s.y(q3)) + "\" width=\"" +
           px(std::max(1.0, bx1 - bx0)) + "\" height=\"" + px(std::max(1.0, s.y(q1) - s.y(q3))) +
           "\" data-low=\"" + num(q1) + "\" data-high=\"" + num(q3) + "\" data-median=\"" +
           num(reg.result.baseline_median) + "\" data-runs=\"";
    for (std::size_t k = 0; k < reg.baseline_indices.size(); ++k) {
      if (k != 0) out += ',';
      out += std::to_string(a.run_ids[reg.baseline_indices[k]]);
    }
    out += "\"><title>baseline: " + std::to_string(reg.baseline) + " runs, interquartile range " +
           escaped(fmt(q1)) + " .. " + escaped(fmt(q3)) + "</title></rect>";
    out += "<line class=\"baseline-median\" x1=\"" + px(bx0) + "\" x2=\"" + px(bx1) + "\" y1=\"" +
           px(s.y(reg.result.baseline_median)) + "\" y2=\"" + px(s.y(reg.result.baseline_median)) + "\"/>";
    // The latest runs, shaded when they regressed or improved.
    const auto& r = reg.result;
    if (r.regressed || r.improved) {
      const double rx0 = s.x(static_cast<double>(n - reg.current)) - 4;
      out += std::string("<rect class=\"") + (r.regressed ? "regression" : "improvement") + "\" x=\"" +
             px(rx0) + "\" y=\"" + px(kTop) + "\" width=\"" + px(s.x(xs.back()) + 4 - rx0) + "\" height=\"" +
             px(kH - kTop - kBottom) + "\" data-runs=\"";
      for (std::size_t i = n - reg.current; i < n; ++i) {
        if (i != n - reg.current) out += ',';
        out += std::to_string(a.run_ids[i]);
      }
      out += "\" data-change=\"" + num(r.relative_change) + "\" data-p=\"" + num(r.mann_whitney.p_value) +
             "\"><title>" + (r.regressed ? "regression" : "improvement") + ": median " +
             escaped(fmt(r.baseline_median)) + " -> " + escaped(fmt(r.current_median)) + " (" +
             format_change(r.relative_change) + ")</title></rect>";
    }
  }
  for (const auto& c : a.change_points) {
    const double x = s.x(static_cast<double>(c.index) - 0.5);
    out += "<line class=\"change-point\" x1=\"" + px(x) + "\" x2=\"" + px(x) + "\" y1=\"" + px(kTop) +
           "\" y2=\"" + px(kH - kBottom) + "\" data-run=\"" + std::to_string(a.run_ids[c.index]) +
           "\" data-mean-before=\"" + num(c.mean_before) + "\" data-mean-after=\"" + num(c.mean_after) +
           "\" data-p=\"" + num(c.p_value) + "\"><title>change point at run " +
           std::to_string(a.run_ids[c.index]) + ": mean " + escaped(fmt(c.mean_before)) + " -> " +
           escaped(fmt(c.mean_after)) + "</title></line>";
  }
  polyline(out, s, xs, a.values);
  std::vector<double> score(n, std::numeric_limits<double>::quiet_NaN());
  for (const auto& [i, sc] : a.anomalies) score[i] = sc;
  for (std::size_t i = 0; i < n; ++i) {
    const bool anomaly = !std::isnan(score[i]);
    out += std::string("<circle class=\"") + (anomaly ? "pt anomaly" : "pt") + "\" cx=\"" + px(s.x(xs[i])) +
           "\" cy=\"" + px(s.y(a.values[i])) + "\" r=\"" + (anomaly ? "4.5" : "2.5") + "\" data-run=\"" +
           std::to_string(a.run_ids[i]) + "\" data-value=\"" + num(a.values[i]) + "\"";
    if (anomaly) out += " data-score=\"" + num(score[i]) + "\"";
    out += "><title>#" + std::to_string(a.run_ids[i]) + " " + escaped(fmt(a.values[i])) + "</title></circle>";
  }
  close_chart(out);
  out += "<p class=\"legend\" data-metric=\"" + m.name + "\">";
  if (a.analysed) {
    esc(out, "trend: " + a.trend.verdict + "; " + std::to_string(a.anomalies.size()) + " anomalies, " +
                 std::to_string(a.change_points.size()) + " change points");
    if (a.regression) {
      const auto& r = a.regression->result;
      esc(out, "; latest " + std::to_string(a.regression->current) + " runs against " +
                   std::to_string(a.regression->baseline) + ": " +
                   (r.regressed  ? "REGRESSION"
                    : r.improved ? "improvement"
                                 : "no significant change") +
                   " (median " + fmt(r.baseline_median) + " -> " + fmt(r.current_median) + ", " +
                   format_change(r.relative_change) + ")");
    }
  } else {
    out += "fewer than 3 successful runs: no analysis yet";
  }
  out += "</p>\n";
}

void runs_table(std::string& out, const std::vector<mon::RunRecord>& runs, bool links) {
  out +=
      "<table class=\"runs\"><thead><tr><th>run</th><th>started</th><th>status</th><th>wall</th>"
      "<th>CPU (user+sys)</th><th>peak RSS</th><th>tree peak</th><th>read</th><th>written</th><th>commit</th>"
      "<th>limits</th></tr></thead><tbody>\n";
  for (const auto& r : runs) {
    out += "<tr class=\"run-row\" data-run=\"" + std::to_string(r.id) + "\"><td>" + run_link(r.id, links) +
           "</td><td>" + escaped(format_time(r.start_unix_ns)) + "</td>" + status_cell(r) +
           "<td class=\"n\">" + escaped(format_seconds(static_cast<double>(r.duration_ns) / 1e9)) +
           "</td><td class=\"n\">" +
           escaped(format_seconds(static_cast<double>(r.user_cpu_ns + r.sys_cpu_ns) / 1e9)) +
           "</td><td class=\"n\">" + escaped(format_bytes(r.max_rss_bytes)) + "</td><td class=\"n\">" +
           escaped(format_bytes(r.peak_tree_rss_bytes)) + "</td><td class=\"n\">" +
           escaped(format_bytes(r.read_bytes)) + "</td><td class=\"n\">" +
           escaped(format_bytes(r.write_bytes)) + "</td><td>" + escaped(r.git_commit.substr(0, 12)) + "</td>";
    out += "<td class=\"limits\">" + escaped(limits_text(r)) + "</td></tr>\n";
  }
  out += "</tbody></table>\n";
}

void alerts_table(std::string& out, const std::vector<mon::AlertRecord>& alerts, bool links) {
  if (alerts.empty()) {
    out += "<p class=\"no-alerts\">No alerts.</p>\n";
    return;
  }
  out +=
      "<table "
      "class=\"alerts\"><thead><tr><th>raised</th><th>label</th><th>run</th><th>rule</th><th>kind</th>"
      "<th>metric</th><th>severity</th><th>value</th><th>baseline</th><th>message</th><th>delivery</th></tr>"
      "</thead><tbody>\n";
  const auto value = [](double v) { return std::isnan(v) ? std::string() : escaped(format_number(v, 6)); };
  // Each channel's last attempt (deliveries come by channel, then attempt).
  const auto delivery = [](const mon::AlertRecord& a) {
    std::string cell;
    for (std::size_t i = 0; i < a.deliveries.size(); ++i) {
      const auto& d = a.deliveries[i];
      if (i + 1 < a.deliveries.size() && a.deliveries[i + 1].channel == d.channel) continue;
      cell += "<span class=\"delivery\" data-channel=\"" + escaped(d.channel) + "\" data-outcome=\"" +
              escaped(d.outcome) + "\" data-attempts=\"" + std::to_string(d.attempt) + "\" title=\"" +
              escaped(d.detail) + "\">" + escaped(d.channel) + ": " + escaped(d.outcome) +
              (d.attempt > 1 ? " (" + std::to_string(d.attempt) + " attempts)" : std::string()) + "</span> ";
    }
    return cell;
  };
  for (const auto& a : alerts) {
    out += "<tr class=\"alert-row\" data-alert=\"" + std::to_string(a.id) + "\" data-run=\"" +
           std::to_string(a.run_id) + "\"><td>" + escaped(format_time(a.created_unix_ns)) + "</td><td>" +
           label_link(a.label, links) + "</td><td>" +
           (a.run_id != 0 ? run_link(a.run_id, links) : std::string()) + "</td><td>" + escaped(a.rule) +
           "</td><td>" + escaped(a.kind) + "</td><td>" + escaped(a.metric) + "</td><td>" +
           escaped(a.severity) + "</td><td class=\"n\">" + value(a.value) + "</td><td class=\"n\">" +
           value(a.baseline) + "</td><td>" + escaped(a.message) + "</td><td>" + delivery(a) + "</td></tr>\n";
  }
  out += "</tbody></table>\n";
}

// The charts of a label and what the analyses say; `links` when served.
void label_body(std::string& out, mon::History& h, const std::string& label,
                const std::vector<mon::RunRecord>& runs, const PageOptions& o, bool links) {
  const auto& latest = runs.front();
  out += "<p class=\"summary\" data-label=\"";
  esc(out, label);
  out += "\" data-runs=\"" + std::to_string(runs.size()) + "\">" + std::to_string(runs.size()) +
         " runs read (newest " + std::to_string(o.runs) + " at most); latest " + run_link(latest.id, links) +
         " started " + escaped(format_time(latest.start_unix_ns)) + ": <span class=\"" +
         (successful_run(latest) ? "ok" : "bad") + "\">" + escaped(status_of(latest)) +
         "</span>. Marked: " + "anomalies (" + escaped(o.analysis.analysis.detect.method) +
         ", whole series), change points, the baseline's interquartile range and the latest " +
         std::to_string(o.analysis.latest) + " runs when they regressed or improved.</p>\n";
  HistoryAnalyzeOptions a = o.analysis;
  a.label = label;
  for (const auto& pin : h.pinned_baselines(label)) a.pinned = pin.run_id;
  // The metrics' analyses are independent and pure: one thread each, so that a page
  // costs about the slowest of them on a machine with cores to spare.
  std::vector<std::future<MetricAnalysis>> analyses;
  for (const auto& m : kMetricViews) {
    analyses.push_back(
        std::async(std::launch::async, [&runs, &a, name = m.name] { return analyze_metric(runs, name, a); }));
  }
  // Then one chart per custom metric the runs recorded, analysed here, one after another
  // (a run may record hundreds: no thread each).
  std::vector<MetricView> custom;
  for (const auto& name : history_metric_names(runs)) {
    const auto builtin = [&](const MetricView& m) { return m.name == name; };
    if (std::none_of(std::begin(kMetricViews), std::end(kMetricViews), builtin))
      custom.push_back({name, name + " (custom)", metric_unit(name, runs)});
  }
  std::vector<MetricAnalysis> custom_analyses;
  for (const auto& m : custom) custom_analyses.push_back(analyze_metric(runs, m.name, a));
  for (std::size_t i = 0; i < analyses.size(); ++i) metric_chart(out, analyses[i].get(), kMetricViews[i]);
  for (std::size_t i = 0; i < custom.size(); ++i) metric_chart(out, custom_analyses[i], custom[i]);
}

Page label_page(mon::History& h, const std::string& label, const PageOptions& o) {
  const auto runs = h.runs({.label = label, .limit = o.runs});
  if (runs.empty()) return error_page(404, "no runs labelled '" + label + "'");
  Page p;
  open_page(p.body, "Label " + label, true);
  label_body(p.body, h, label, runs, o, true);
  p.body += "<h2>Alerts</h2>\n";
  alerts_table(p.body, h.alerts({.label = label, .since_unix_ns = std::nullopt, .limit = o.alerts}), true);
  p.body += "<h2>Runs</h2>\n";
  runs_table(p.body, runs, true);
  close_page(p.body);
  return p;
}

Page index_page(mon::History& h, const PageOptions& o) {
  const auto labels = h.labels();
  Page p;
  open_page(p.body, "spyglass run history", true);
  if (labels.empty()) p.body += "<p>No runs recorded yet.</p>\n";
  p.body +=
      "<table class=\"labels\"><thead><tr><th>label</th><th>runs</th><th>latest</th><th>started</th>"
      "<th>status</th><th>wall</th><th>wall trend (latest " +
      std::to_string(o.index_runs) + " runs)</th></tr></thead><tbody>\n";
  for (const auto& l : labels) {
    const auto runs = h.runs({.label = l.label, .limit = o.index_runs});
    if (runs.empty()) continue;  // deleted since
    const auto& r = runs.front();
    const auto trend = metric_trend(runs, "wall");
    p.body += "<tr class=\"label-row\" data-label=\"" + escaped(l.label) + "\" data-runs=\"" +
              std::to_string(l.runs) + "\"><td>" + label_link(l.label, true) + "</td><td class=\"n\">" +
              std::to_string(l.runs) + "</td><td>" + run_link(r.id, true) + "</td><td>" +
              escaped(format_time(r.start_unix_ns)) + "</td>" + status_cell(r) + "<td class=\"n\">" +
              escaped(format_seconds(static_cast<double>(r.duration_ns) / 1e9)) +
              "</td><td class=\"trend\">" + escaped(trend ? trend->verdict : "fewer than 3 successful runs") +
              "</td></tr>\n";
  }
  p.body += "</tbody></table>\n";
  close_page(p.body);
  return p;
}

// ---------------------------------------------------------------------------------------
// A run's page

// A limit of the run, drawn across a chart of the figure it bounds.
struct LimitLine {
  double value;
  std::string title;
};

void sample_chart(std::string& out, const char* metric, const std::string& title,
                  const std::vector<double>& ts, const std::vector<double>& ys, Fmt fmt,
                  const std::vector<mon::RunDetection>& detections,
                  const std::optional<LimitLine>& limit = std::nullopt) {
  // The scale takes the limit in, so that the line is always on the chart.
  const Scale s = scale_for(0, ts.empty() ? 1 : std::max(ts.back(), 1e-3), ys, limit ? limit->value : 0);
  open_chart(out, metric, title, s, fmt,
             "seconds since the start (" + std::to_string(ts.size()) + " samples)");
  if (limit) {
    const std::string y = px(s.y(limit->value));
    out += "<line class=\"limit\" x1=\"" + px(kLeft) + "\" x2=\"" + px(kW - kRight) + "\" y1=\"" + y +
           "\" y2=\"" + y + "\" data-value=\"" + num(limit->value) + "\"><title>" + escaped(limit->title) +
           "</title></line>";
    out += "<text class=\"limit-label\" x=\"" + px(kW - kRight - 4) + "\" y=\"" + px(s.y(limit->value) - 4) +
           "\" text-anchor=\"end\">";
    esc(out, limit->title);
    out += "</text>";
  }
  for (const auto& d : detections) {
    if ((d.metric == "cpu") != (std::string_view(metric) == "cpu")) continue;
    const double x = s.x(static_cast<double>(d.offset_ns) / 1e9);
    out += "<line class=\"detection\" x1=\"" + px(x) + "\" x2=\"" + px(x) + "\" y1=\"" + px(kTop) +
           "\" y2=\"" + px(kH - kBottom) + "\" data-offset=\"" + num(static_cast<double>(d.offset_ns) / 1e9) +
           "\" data-kind=\"" + escaped(d.kind) + "\" data-value=\"" + num(d.value) + "\"><title>" +
           escaped(d.metric + " " + d.kind + " (" + d.detector + ")") + "</title></line>";
  }
  polyline(out, s, ts, ys);
  for (std::size_t i = 0; i < ts.size(); ++i) {
    out += "<circle class=\"pt\" cx=\"" + px(s.x(ts[i])) + "\" cy=\"" + px(s.y(ys[i])) +
           "\" r=\"2\" data-t=\"" + num(ts[i]) + "\" data-value=\"" + num(ys[i]) + "\"/>";
  }
  close_chart(out);
}

void row(std::string& out, const char* name, const std::string& value) {
  out += "<tr><th>";
  out += name;
  out += "</th><td>" + escaped(value) + "</td></tr>";
}

Page run_page(mon::History& h, std::int64_t id, const PageOptions& o) {
  const auto r = h.run(id);
  if (!r) return error_page(404, "no run " + std::to_string(id));
  const auto samples = h.samples(id);
  Page p;
  open_page(p.body, "Run #" + std::to_string(id), true);
  std::string cmd = r->command;
  for (const auto& a : r->args) cmd += " " + a;
  p.body += "<table class=\"run\" data-run=\"" + std::to_string(id) + "\"><tbody><tr><th>label</th><td>" +
            label_link(r->label, true) + "</td></tr>";
  row(p.body, "command", cmd);
  row(p.body, "started", format_time(r->start_unix_ns));
  p.body += "<tr><th>status</th>" + status_cell(*r) + "</tr>";
  row(p.body, "wall", format_seconds(static_cast<double>(r->duration_ns) / 1e9));
  row(p.body, "CPU user / sys",
      format_seconds(static_cast<double>(r->user_cpu_ns) / 1e9) + " / " +
          format_seconds(static_cast<double>(r->sys_cpu_ns) / 1e9));
  row(p.body, "peak RSS", format_bytes(r->max_rss_bytes));
  row(p.body, "tree peak memory", format_bytes(r->tree_peak_memory_bytes) + " (" + r->tree_source + ")");
  row(p.body, "read / written", format_bytes(r->read_bytes) + " / " + format_bytes(r->write_bytes));
  row(p.body, "host", r->host);
  row(p.body, "git commit", r->git_commit);
  p.body += "</tbody></table>\n<h2>Limits</h2>\n<table class=\"limits\"><tbody>";
  row(p.body, "killed by", r->kill_reason.empty() ? "none" : r->kill_reason);
  const mon::RunLimits& lim = r->limits;
  const auto limit_row = [&](const char* name, const char* key, std::optional<double> v,
                             const std::string& text) {
    p.body += "<tr class=\"limit-row\" data-limit=\"" + std::string(key) + "\"" +
              (v ? " data-value=\"" + num(*v) + "\"" : std::string()) + "><th>" + name + "</th><td>" +
              escaped(text) + "</td></tr>";
  };
  const auto opt_double = [](const auto& v) {
    return v ? std::optional(static_cast<double>(*v)) : std::nullopt;
  };
  limit_row("timeout", "timeout", opt_double(lim.timeout_ns),
            lim.timeout_ns ? format_seconds(static_cast<double>(*lim.timeout_ns) / 1e9) : "none");
  limit_row("max RSS", "max-rss", opt_double(lim.max_rss_bytes),
            lim.max_rss_bytes ? format_bytes(*lim.max_rss_bytes) : "none");
  row(p.body, "memory limit on", r->max_rss_source.empty() ? "no memory limit" : r->max_rss_source);
  limit_row("max CPU", "max-cpu", lim.max_cpu_seconds,
            lim.max_cpu_seconds ? format_seconds(*lim.max_cpu_seconds) + " user+system" : "none");
  limit_row(
      "kill", "kill", std::nullopt,
      lim.kill.empty()
          ? "not recorded"
          : lim.kill + (lim.grace_ns ? ", grace " + format_seconds(static_cast<double>(*lim.grace_ns) / 1e9)
                                     : std::string()));
  row(p.body, "leftover processes",
      std::to_string(r->leftover_processes) + (r->leftovers_killed ? " (ended)" : ""));
  p.body += "</tbody></table>\n";

  std::vector<double> ts, cpu, cpu_time, rss, io;
  for (const auto& s : samples) {
    ts.push_back(static_cast<double>(s.t_ns) / 1e9);
    cpu.push_back(s.cpu_user_pct + s.cpu_sys_pct);
    cpu_time.push_back(static_cast<double>(s.cpu_user_ns + s.cpu_sys_ns) / 1e9);
    rss.push_back(static_cast<double>(s.rss_bytes));
    io.push_back(static_cast<double>(s.read_bytes + s.write_bytes));
  }
  p.body += "<h2>Over time</h2>\n";
  if (samples.empty()) p.body += "<p>No samples recorded.</p>\n";
  sample_chart(p.body, "cpu", "CPU of the tree (100% = one core)", ts, cpu, percent_label, r->detections);
  // --max-cpu bounds CPU time, not a rate: its line is drawn on the cumulative chart.
  std::optional<LimitLine> cpu_limit, rss_limit;
  if (lim.max_cpu_seconds)
    cpu_limit = LimitLine{*lim.max_cpu_seconds, "max CPU " + format_seconds(*lim.max_cpu_seconds)};
  if (lim.max_rss_bytes) {
    rss_limit = LimitLine{static_cast<double>(*lim.max_rss_bytes),
                          "max RSS " + format_bytes(*lim.max_rss_bytes) + " on " +
                              (r->max_rss_source.empty() ? std::string("rss") : r->max_rss_source)};
  }
  sample_chart(p.body, "cpu_time", "CPU time of the tree, user+system (cumulative)", ts, cpu_time,
               seconds_label, {}, cpu_limit);
  sample_chart(p.body, "rss", "RSS of the tree", ts, rss, bytes_label, r->detections, rss_limit);
  sample_chart(p.body, "io", "Storage bytes read + written (cumulative)", ts, io, bytes_label, {});

  p.body += "<h2>Live detections</h2>\n";
  if (r->detections.empty()) {
    p.body += "<p>None.</p>\n";
  } else {
    p.body +=
        "<table class=\"detections\"><thead><tr><th>at</th><th>metric</th><th>kind</th><th>value</th>"
        "<th>score</th><th>detector</th></tr></thead><tbody>";
    for (const auto& d : r->detections) {
      p.body += "<tr class=\"detection-row\"><td>" +
                escaped(format_number(static_cast<double>(d.offset_ns) / 1e9, 4)) + " s</td><td>" +
                escaped(d.metric) + "</td><td>" + escaped(d.kind) + "</td><td>" +
                escaped(d.metric == "cpu" ? percent_label(d.value) : bytes_label(d.value)) + "</td><td>" +
                escaped(format_number(d.score, 3)) + "</td><td>" + escaped(d.detector) + "</td></tr>";
    }
    p.body += "</tbody></table>\n";
  }
  p.body += "<h2>Alerts</h2>\n";
  auto alerts = h.alerts({.label = r->label, .since_unix_ns = std::nullopt, .limit = o.alerts});
  std::erase_if(alerts, [&](const mon::AlertRecord& a) { return a.run_id != id; });
  alerts_table(p.body, alerts, true);
  p.body += "<h2>Output</h2>\n<h3>stdout (last bytes)</h3>\n<pre class=\"stdout\">";
  append_xml_escaped(r->stdout_tail, p.body, true);
  p.body += "</pre>\n<h3>stderr (last bytes)</h3>\n<pre class=\"stderr\">";
  append_xml_escaped(r->stderr_tail, p.body, true);
  p.body += "</pre>\n";
  close_page(p.body);
  return p;
}

const std::string* param(const std::map<std::string, std::string>& params, const char* name) {
  const auto it = params.find(name);
  return it == params.end() ? nullptr : &it->second;
}

}  // namespace

Page serve_page(mon::History& h, std::string_view path, const std::map<std::string, std::string>& params,
                const PageOptions& o) {
  if (path == "/") return index_page(h, o);
  if (path == "/alerts") {
    Page p;
    open_page(p.body, "Alerts", true);
    alerts_table(p.body, h.alerts({.label = {}, .since_unix_ns = std::nullopt, .limit = o.alerts}), true);
    close_page(p.body);
    return p;
  }
  if (path == "/label") {
    const std::string* name = param(params, "name");
    if (name == nullptr || name->empty()) return error_page(400, "/label needs ?name=LABEL");
    return label_page(h, *name, o);
  }
  if (path == "/run") {
    const std::string* id = param(params, "id");
    std::int64_t v = 0;
    if (id == nullptr) return error_page(400, "/run needs ?id=RUN_ID");
    const auto r = std::from_chars(id->data(), id->data() + id->size(), v);
    if (r.ec != std::errc() || r.ptr != id->data() + id->size() || v < 1)
      return error_page(400, "not a run id: '" + *id + "'");
    return run_page(h, v, o);
  }
  return error_page(404, "no page " + std::string(path));
}

std::optional<std::string> report_page(mon::History& h, const std::string& label, const PageOptions& o,
                                       const std::string& flame_svg) {
  const auto runs = h.runs({.label = label, .limit = o.runs});
  if (runs.empty()) return std::nullopt;
  std::string out;
  open_page(out, "spyglass report: " + label, false);
  label_body(out, h, label, runs, o, false);
  if (!flame_svg.empty()) {
    out += "<h2>Flame graph</h2>\n<figure class=\"flamegraph\">";
    // The SVG inline, without its XML declaration (not allowed inside HTML).
    const auto svg = flame_svg.find("<svg");
    out += svg == std::string::npos ? flame_svg : flame_svg.substr(svg);
    out += "</figure>\n";
  }
  out += "<h2>Alerts</h2>\n";
  alerts_table(out, h.alerts({.label = label, .since_unix_ns = std::nullopt, .limit = o.alerts}), false);
  out += "<h2>Runs</h2>\n";
  runs_table(out, runs, false);
  close_page(out);
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::cli
