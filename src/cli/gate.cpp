// `spyglass gate`: threshold, regression and change-point rules, and their reports.

#include "gate.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <tuple>

#include "report.hpp"
#include "series.hpp"
#include "spyglass/clock.hpp"
#include "units.hpp"

namespace SPYGLASS_NAMESPACE::cli {

namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

const auto num = [](double v, int digits = 4) { return format_number(v, digits); };
const auto pct = format_change;

// The metrics after "no-regression:" or "no-change-point:" (none: all of them, with the
// custom metrics the runs recorded, found when the rule is checked).
std::vector<std::string> metric_list(std::string_view rule, std::string_view list) {
  std::vector<std::string> out;
  if (list.empty()) return out;
  while (true) {
    const auto comma = list.find(',');
    const std::string m = trim(list.substr(0, comma));
    try {
      metric_unit(m);  // throws InputError for an unknown metric
    } catch (const InputError& e) {
      throw InputError("rule '" + std::string(rule) + "': " + e.what());
    }
    out.push_back(m);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

bool holds(double v, const std::string& op, double limit) {
  if (op == "<") return v < limit;
  if (op == "<=") return v <= limit;
  if (op == ">") return v > limit;
  return v >= limit;
}

double since(std::uint64_t t0) { return static_cast<double>(clock::monotonic_ns() - t0) / 1e9; }

std::string iso_seconds(std::int64_t unix_ns, bool zone) {
  const auto t = static_cast<std::time_t>(unix_ns / 1000000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, zone ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\n': out += "&#10;"; break;
      default:
        // Control bytes are not allowed in XML 1.0: they become spaces.
        out += static_cast<unsigned char>(c) < 0x20 && c != '\t' ? ' ' : c;
    }
  }
  return out;
}

// Seconds with 3 decimals, no exponent: the surefire schema's pattern that Jenkins reads.
std::string secs(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

}  // namespace

GateRule parse_gate_rule(std::string_view text) {
  GateRule r;
  r.text = trim(text);
  const std::string_view t = r.text;
  for (const auto& [word, kind] :
       {std::pair{std::string_view("no-regression"), GateRule::Kind::no_regression},
        {std::string_view("no-change-point"), GateRule::Kind::no_change_point}}) {
    if (t.rfind(word, 0) != 0) continue;
    std::string_view rest = t.substr(word.size());
    if (!rest.empty() && rest.front() != ':') continue;
    if (!rest.empty()) {
      rest.remove_prefix(1);
      if (trim(rest).empty()) throw InputError("rule '" + r.text + "': no metric after ':'");
    }
    r.kind = kind;
    r.metrics = metric_list(t, rest);
    return r;
  }
  const auto op_at = t.find_first_of("<>");
  if (op_at == std::string_view::npos) {
    throw InputError("rule '" + r.text +
                     "': expected METRIC < VALUE (or <=, >, >=), no-regression or no-change-point");
  }
  const std::string metric = trim(t.substr(0, op_at));
  r.op = t.substr(op_at, op_at + 1 < t.size() && t[op_at + 1] == '=' ? 2 : 1);
  const std::string value = trim(t.substr(op_at + r.op.size()));
  std::string unit;
  try {
    unit = metric_unit(metric);  // throws InputError for an unknown metric; "" for a custom one
  } catch (const InputError& e) {
    throw InputError("rule '" + r.text + "': " + e.what());
  }
  r.metrics = {metric};
  const auto v = parse_quantity(unit, value);
  if (!v) throw InputError("rule '" + r.text + "': '" + value + "' is not " + quantity_words(unit));
  r.limit = *v;
  return r;
}

std::size_t GateReport::count(GateCheck::Status s) const {
  return static_cast<std::size_t>(
      std::count_if(checks.begin(), checks.end(), [s](const GateCheck& c) { return c.status == s; }));
}

GateReport evaluate_gate(const std::vector<monitor::RunRecord>& runs, const GateOptions& o) {
  if (runs.empty()) throw InputError("label '" + o.history.label + "': no runs");
  GateReport rep;
  rep.label = o.history.label;
  rep.run_id = runs.front().id;
  rep.start_unix_ns = static_cast<std::int64_t>(clock::realtime_ns());
  const std::uint64_t t_all = clock::monotonic_ns();
  const auto& latest = runs.front();
  // Each metric's history is computed once, whichever rules ask for it.
  std::vector<std::pair<std::string, MetricCheck>> cache;
  auto history_of = [&](const std::string& m) -> const MetricCheck& {
    for (const auto& [name, c] : cache) {
      if (name == m) return c;
    }
    cache.emplace_back(m, check_metric(runs, m, o.history));
    return cache.back().second;
  };
  using S = GateCheck::Status;
  const bool latest_ok = successful_run(latest);
  const std::string latest_run = "run " + std::to_string(latest.id);
  if (!latest_ok) {
    GateCheck c;
    c.name = "latest run succeeded";
    c.status = S::fail;
    const std::string how = outcome(latest);
    c.measured = "exit " + std::to_string(latest.exit_code) + (how.empty() ? "" : ", " + how);
    c.threshold = "exit 0, not killed";
    c.message = latest_run + " " + (how.empty() ? "exited with " + std::to_string(latest.exit_code) : how);
    rep.checks.push_back(std::move(c));
  }
  const std::vector<std::string> all_metrics = history_metric_names(runs);
  // A metric no run of the label has is a mistake in the rule (a typo would otherwise
  // skip or fail quietly), told before anything is checked.
  for (const auto& rule : o.rules) {
    for (const auto& m : rule.metrics) {
      if (std::find(all_metrics.begin(), all_metrics.end(), m) != all_metrics.end()) continue;
      std::string list;
      for (const auto& n : all_metrics) list += (list.empty() ? "" : ", ") + n;
      throw InputError("rule '" + rule.text + "': no metric '" + m + "' in the runs of label '" +
                       o.history.label + "' (metrics: " + list + ")");
    }
  }
  for (const auto& rule : o.rules) {
    for (const auto& m : rule.metrics.empty() ? all_metrics : rule.metrics) {
      const std::uint64_t t0 = clock::monotonic_ns();
      GateCheck c;
      if (rule.kind == GateRule::Kind::threshold && !latest_ok) {
        c.name = rule.text;
        c.status = S::skip;
        c.measured = "run failed";
        c.threshold = rule.op + " " + metric_text(m, rule.limit, runs);
        c.message = latest_run + " did not succeed: its " + m + " is not that of a whole run";
      } else if (rule.kind == GateRule::Kind::threshold) {
        const double v = history_metric(latest, m);
        c.name = rule.text;
        c.threshold = rule.op + " " + metric_text(m, rule.limit, runs);
        if (std::isnan(v)) {
          // A custom metric the run did not record fails: a gate never passes on nothing.
          c.measured = "not recorded";
          c.status = S::fail;
          c.message =
              m + " was not recorded by run " + std::to_string(latest.id) + ", threshold " + c.threshold;
        } else {
          c.measured = metric_text(m, v, runs);
          c.status = holds(v, rule.op, rule.limit) ? S::pass : S::fail;
          c.message =
              m + " " + c.measured + " in run " + std::to_string(latest.id) + ", threshold " + c.threshold;
        }
      } else if (rule.kind == GateRule::Kind::no_regression) {
        c.name = "no-regression " + m;
        const auto& h = history_of(m);
        const std::size_t need = o.history.latest + 3;
        c.threshold = "Mann-Whitney p >= 0.01 or median change < +5%";
        if (!h.regression) {
          c.status = S::skip;
          c.measured = "not enough runs";
          c.message = "needs the latest " + std::to_string(o.history.latest) +
                      " successful runs and 3 baseline runs before them; found " +
                      std::to_string(h.run_ids.size()) + " successful runs (at least " +
                      std::to_string(need) + ")";
        } else {
          const auto& g = h.regression->result;
          c.status = g.regressed ? S::fail : S::pass;
          c.measured = "median " + metric_text(m, g.current_median, runs) + " vs " +
                       metric_text(m, g.baseline_median, runs) + " (" + pct(g.relative_change) +
                       "), Mann-Whitney p " + num(g.mann_whitney.p_value, 3);
          if (h.regression->pinned)
            c.measured += ", baseline up to pinned run " + std::to_string(*h.regression->pinned);
          c.message = m + ": latest " + std::to_string(h.regression->current) + " runs vs " +
                      std::to_string(h.regression->baseline) + " baseline runs: " + c.measured +
                      "; threshold " + c.threshold;
        }
      } else {
        c.name = "no-change-point " + m;
        const auto& h = history_of(m);
        const std::size_t n = h.run_ids.size();
        c.threshold = "no significant change point in the newest " + std::to_string(o.recent) + " runs";
        if (n < 3) {
          c.status = S::skip;
          c.measured = "not enough runs";
          c.message = "needs 3 successful runs, found " + std::to_string(n);
        } else {
          const analytics::ChangePoint* found = nullptr;
          for (const auto& cp : h.change_points) {
            if (cp.index + o.recent >= n) found = &cp;
          }
          if (found == nullptr) {
            c.measured = std::to_string(h.change_points.size()) + " change point(s) in " + std::to_string(n) +
                         " runs, none recent";
          } else {
            c.status = S::fail;
            c.measured = std::string(found->mean_after >= found->mean_before ? "rose " : "fell ") +
                         pct(found->relative_change) + " starting at run " +
                         std::to_string(h.run_ids[found->index]) + ": mean " +
                         metric_text(m, found->mean_before, runs) + " -> " +
                         metric_text(m, found->mean_after, runs) + ", p " + num(found->p_value, 3);
          }
          c.message = m + ": " + c.measured + "; threshold " + c.threshold;
        }
      }
      c.seconds = since(t0);
      rep.checks.push_back(std::move(c));
    }
  }
  rep.seconds = since(t_all);
  return rep;
}

int run_gate(monitor::History& h, GateOptions o, std::size_t runs, const GateOutputs& files, std::FILE* out) {
  const auto list = h.runs({.label = o.history.label, .limit = runs});
  if (list.empty()) {
    std::fprintf(stderr, "spyglass: no runs labelled '%s'\n", o.history.label.c_str());
    return 1;
  }
  for (const auto& p : h.pinned_baselines(o.history.label)) o.history.pinned = p.run_id;
  GateReport rep;
  try {
    rep = evaluate_gate(list, o);
  } catch (const InputError& e) {
    std::fprintf(stderr, "spyglass: error: %s\n", e.what());
    return 1;
  }
  if (out != nullptr) std::fputs(gate_text(rep).c_str(), out);
  if (!write_gate_reports(rep, files)) return 1;
  return rep.count(GateCheck::Status::fail) == 0 ? 0 : kGateFailed;
}

bool write_gate_reports(const GateReport& rep, const GateOutputs& files) {
  bool written = true;
  for (const auto& [path, text, append] : {std::tuple{files.junit, gate_junit(rep), false},
                                           {files.tap, gate_tap(rep), false},
                                           {files.markdown, gate_markdown(rep), true}}) {
    if (path.empty()) continue;
    std::ofstream f(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
    f << text;
    f.close();
    if (!f) {
      std::fprintf(stderr, "spyglass: error: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
      written = false;
    }
  }
  return written;
}

std::string gate_junit(const GateReport& r) {
  const std::string counts = "tests=\"" + std::to_string(r.checks.size()) + "\" failures=\"" +
                             std::to_string(r.count(GateCheck::Status::fail)) + "\" errors=\"0\" skipped=\"" +
                             std::to_string(r.count(GateCheck::Status::skip)) + "\" time=\"" +
                             secs(r.seconds) + "\"";
  const std::string label = xml_escape(r.label);
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<testsuites name=\"spyglass gate\" " + counts + ">\n";
  out += "  <testsuite name=\"spyglass gate: " + label + "\" " + counts + " timestamp=\"" +
         iso_seconds(r.start_unix_ns, false) + "\">\n";
  out += "    <properties>\n      <property name=\"label\" value=\"" + label +
         "\"/>\n      <property name=\"run_id\" value=\"" + std::to_string(r.run_id) +
         "\"/>\n    </properties>\n";
  for (const auto& c : r.checks) {
    out += "    <testcase name=\"" + xml_escape(c.name) + "\" classname=\"spyglass.gate." + label +
           "\" time=\"" + secs(c.seconds) + "\"";
    if (c.status == GateCheck::Status::pass) {
      out += "/>\n";
      continue;
    }
    out += ">\n";
    if (c.status == GateCheck::Status::skip) {
      out += "      <skipped message=\"" + xml_escape(c.message) + "\"/>\n";
    } else {
      out += "      <failure message=\"" + xml_escape(c.message) +
             "\" type=\"gate\">measured: " + xml_escape(c.measured) +
             "&#10;threshold: " + xml_escape(c.threshold) + "</failure>\n";
    }
    out += "    </testcase>\n";
  }
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

namespace {

// A TAP description: '#' starts a directive, so it is escaped; a line break ends the line.
std::string tap_text(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '#' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

// A YAML double-quoted scalar.
std::string yaml_quoted(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out + "\"";
}

std::string md_cell(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

}  // namespace

std::string gate_tap(const GateReport& r) {
  std::string out = "TAP version 14\n1.." + std::to_string(r.checks.size()) + "\n";
  std::size_t i = 0;
  for (const auto& c : r.checks) {
    ++i;
    out += std::string(c.status == GateCheck::Status::fail ? "not ok " : "ok ") + std::to_string(i) + " - " +
           tap_text(c.name);
    if (c.status == GateCheck::Status::skip) {
      out += " # SKIP " + tap_text(c.message) + "\n";
      continue;
    }
    out += "\n";
    if (c.status == GateCheck::Status::fail) {
      out += "  ---\n  message: " + yaml_quoted(c.message) + "\n  measured: " + yaml_quoted(c.measured) +
             "\n  threshold: " + yaml_quoted(c.threshold) + "\n  label: " + yaml_quoted(r.label) +
             "\n  run_id: " + std::to_string(r.run_id) + "\n  ...\n";
    }
  }
  return out;
}

std::string gate_markdown(const GateReport& r) {
  const std::size_t failed = r.count(GateCheck::Status::fail);
  std::string out =
      "### spyglass gate: " + md_cell(r.label) + ": " +
      (failed == 0
           ? std::string("passed")
           : "FAILED (" + std::to_string(failed) + " of " + std::to_string(r.checks.size()) + " failed)") +
      "\n\nLatest run " + std::to_string(r.run_id) + ", checked " + iso_seconds(r.start_unix_ns, true) +
      ".\n\n| | rule | measured | threshold |\n|---|---|---|---|\n";
  for (const auto& c : r.checks) {
    const char* mark = c.status == GateCheck::Status::pass   ? ":white_check_mark:"
                       : c.status == GateCheck::Status::fail ? ":x:"
                                                             : ":warning: skipped";
    out += std::string("| ") + mark + " | `" + md_cell(c.name) + "` | " +
           md_cell(c.status == GateCheck::Status::skip ? c.message : c.measured) + " | " +
           md_cell(c.threshold) + " |\n";
  }
  return out + "\n";
}

std::string gate_text(const GateReport& r) {
  std::string out;
  for (const auto& c : r.checks) {
    out += c.status == GateCheck::Status::pass   ? "PASS "
           : c.status == GateCheck::Status::fail ? "FAIL "
                                                 : "SKIP ";
    out += c.name + ": " + (c.status == GateCheck::Status::pass ? c.measured : c.message) + "\n";
  }
  const std::size_t failed = r.count(GateCheck::Status::fail);
  out += "gate " + std::string(failed == 0 ? "passed" : "FAILED") + " for label " + r.label + " (run " +
         std::to_string(r.run_id) +
         "): " + std::to_string(r.checks.size() - failed - r.count(GateCheck::Status::skip)) + " passed, " +
         std::to_string(failed) + " failed, " + std::to_string(r.count(GateCheck::Status::skip)) +
         " skipped\n";
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::cli
