#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace SPYGLASS_NAMESPACE::cli {

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string change(double now, double base) {
  if (base <= 0) return "n/a";
  const double pct = (now - base) / base * 100.0;
  return fmt("%+.1f%%", pct);
}

double cpu_s(const monitor::RunRecord& r) { return static_cast<double>(r.user_cpu_ns + r.sys_cpu_ns) / 1e9; }

std::string command_line(const monitor::RunRecord& r) {
  std::string s = r.command;
  for (const auto& a : r.args) s += " " + a;
  return s;
}

}  // namespace

std::string outcome(const monitor::RunRecord& r) {
  if (!r.error.empty()) return "failed to start: " + r.error;
  if (!r.kill_reason.empty()) return "killed (" + r.kill_reason + ")";
  if (r.signal != 0) return "signal " + std::to_string(r.signal);
  return {};
}

std::string format_bytes(std::uint64_t b) {
  const double v = static_cast<double>(b);
  if (b < 1024) return std::to_string(b) + " B";
  if (b < 1024 * 1024) return fmt("%.1f KiB", v / 1024);
  if (b < 1024ULL * 1024 * 1024) return fmt("%.1f MiB", v / (1024.0 * 1024));
  return fmt("%.2f GiB", v / (1024.0 * 1024 * 1024));
}

std::string format_seconds(double s) {
  if (s < 1) return fmt("%.0f ms", s * 1000);
  if (s < 120) return fmt("%.2f s", s);
  return fmt("%.1f min", s / 60);
}

std::string format_number(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string format_change(double fraction) {
  return (fraction >= 0 ? "+" : "") + format_number(100 * fraction, 3) + "%";
}

std::string format_time(std::int64_t unix_ns) {
  const std::time_t t = static_cast<std::time_t>(unix_ns / 1000000000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string unit_value_text(const std::string& unit, double v) {
  const std::string sign = v < 0 ? "-" : "";
  if (unit == "s") return sign + format_seconds(std::fabs(v));
  if (unit == "B" || unit == "bytes")
    return sign + format_bytes(static_cast<std::uint64_t>(std::llround(std::fabs(v))));
  return format_number(v, 6);
}

namespace {

std::string leftovers_line(const monitor::RunRecord& r, const std::vector<pid_t>& pids) {
  if (r.leftover_processes == 0) return {};
  std::string out = "  " + std::to_string(r.leftover_processes) +
                    (r.leftover_processes == 1 ? " process" : " processes") + " the command started " +
                    (r.leftovers_killed ? "were still running at its exit and were ended"
                                        : "still running after it exited (--kill-leftovers ends them)");
  if (!pids.empty()) {
    out += ": pid";
    for (std::size_t i = 0; i < pids.size() && i < 10; ++i) out += " " + std::to_string(pids[i]);
    if (pids.size() > 10) out += " ...";
  }
  return out + "\n";
}

// The custom metrics the run recorded, after `lead`, `per_line` to a line.
std::string metric_lines(const monitor::RunRecord& r, const char* lead, std::size_t per_line) {
  std::string out;
  for (std::size_t i = 0; i < r.metrics.size(); ++i) {
    out += i % per_line == 0 ? (i == 0 ? "" : "\n") + std::string(lead) : "  ";
    out += r.metrics[i].name + " " + unit_value_text(r.metrics[i].unit, r.metrics[i].value);
  }
  return out.empty() ? out : out + "\n";
}

// A line per finding of live detection, the first `cap` of them; `more` says where the
// rest are.
std::string detection_lines(const monitor::RunRecord& r, const char* lead, std::size_t cap,
                            const std::string& more) {
  std::string out;
  std::size_t n = 0;
  for (const monitor::RunDetection& d : r.detections) {
    if (n++ == cap) {
      out += std::string(lead) + "... " + std::to_string(r.detections.size() - cap) + " more" + more + "\n";
      break;
    }
    const bool cpu = d.metric == "cpu";
    char value[64];
    std::snprintf(value, sizeof value, "%.0f%% CPU", d.value);
    std::string what =
        cpu ? std::string(value) : format_bytes(static_cast<std::uint64_t>(std::max(0.0, d.value)));
    char score[64];
    if (d.kind == "leak") {
      std::snprintf(score, sizeof score, "growing %s/s",
                    format_bytes(static_cast<std::uint64_t>(std::max(0.0, d.score))).c_str());
    } else if (std::isinf(d.score)) {
      std::snprintf(score, sizeof score, "score inf: flat before");
    } else {
      std::snprintf(score, sizeof score, "score %.1f", d.score);
    }
    out += std::string(lead) + (cpu ? "CPU " : "memory ") + d.kind + " at " +
           format_seconds(static_cast<double>(d.offset_ns) / 1e9) + ": " + what + " (" + d.detector + ", " +
           score + ")\n";
  }
  return out;
}

std::string tree_line(const monitor::RunRecord& r, const char* lead) {
  const bool cgroup = r.tree_source.rfind("cgroup", 0) == 0;
  std::string out = lead + ("(" + r.tree_source + "): ");
  out += cgroup ? "peak memory " + format_bytes(r.tree_peak_memory_bytes)
                : "peak RSS sum " + format_bytes(r.peak_tree_rss_bytes);
  if (r.peak_tree_pss_bytes != 0) out += "  PSS sum " + format_bytes(r.peak_tree_pss_bytes);
  if (cgroup) {
    out += "  cpu " + format_seconds(static_cast<double>(r.tree_user_cpu_ns + r.tree_sys_cpu_ns) / 1e9) +
           "  read " + format_bytes(r.tree_read_bytes) + "  written " + format_bytes(r.tree_write_bytes) +
           "  processes " + std::to_string(r.tree_peak_processes);
  }
  if (!r.max_rss_source.empty()) out += "  limit on " + r.max_rss_source;
  out += "\n";
  if (!cgroup && !r.tree_source_reason.empty()) out += "    sampled: " + r.tree_source_reason + "\n";
  return out;
}

}  // namespace

std::string run_summary(const monitor::RunRecord& r, const std::vector<monitor::RunRecord>& baseline,
                        const std::vector<pid_t>& leftover_pids) {
  std::string out = "spyglass: ";
  if (r.id != 0) out += "run " + std::to_string(r.id) + " ";
  out += "[" + r.label + "] exit " + std::to_string(r.exit_code);
  const std::string o = outcome(r);
  if (!o.empty()) out += " (" + o + ")";
  out += "\n";
  if (!r.error.empty()) return out;
  out += "  wall " + format_seconds(static_cast<double>(r.duration_ns) / 1e9) + "  cpu " +
         format_seconds(static_cast<double>(r.user_cpu_ns) / 1e9) + " user + " +
         format_seconds(static_cast<double>(r.sys_cpu_ns) / 1e9) + " sys  peak RSS " +
         format_bytes(r.max_rss_bytes) + " (tree " + format_bytes(r.peak_tree_rss_bytes) + ")\n";
  out += "  read " + format_bytes(r.read_bytes) + "  written " + format_bytes(r.write_bytes) + "  threads " +
         std::to_string(r.peak_threads) + "  processes " + std::to_string(r.peak_processes) + "\n";
  out += tree_line(r, "  tree ");
  out += leftovers_line(r, leftover_pids);
  out += metric_lines(r, "  metrics ", 4);
  out +=
      detection_lines(r, "  detected ", 5, r.id != 0 ? " (spyglass show " + std::to_string(r.id) + ")" : "");
  if (baseline.empty()) {
    out += "  no previous successful runs of this label to compare with\n";
    return out;
  }
  std::vector<double> wall, cpu, rss;
  for (const auto& b : baseline) {
    wall.push_back(static_cast<double>(b.duration_ns) / 1e9);
    cpu.push_back(cpu_s(b));
    rss.push_back(static_cast<double>(b.max_rss_bytes));
  }
  const double mw = median(wall), mc = median(cpu), mr = median(rss);
  out += "  vs median of " + std::to_string(baseline.size()) + " previous run" +
         (baseline.size() == 1 ? "" : "s") + ": wall " + format_seconds(mw) + " (" +
         change(static_cast<double>(r.duration_ns) / 1e9, mw) + ")  cpu " + format_seconds(mc) + " (" +
         change(cpu_s(r), mc) + ")  peak RSS " + format_bytes(static_cast<std::uint64_t>(mr)) + " (" +
         change(static_cast<double>(r.max_rss_bytes), mr) + ")\n";
  return out;
}

std::string sample_chart(const std::vector<monitor::Sample>& samples, std::size_t width) {
  if (samples.size() < 2 || width == 0) return "  (not enough samples for a chart)\n";
  static const char* kBlocks[] = {" ",      "\u2581", "\u2582", "\u2583", "\u2584",
                                  "\u2585", "\u2586", "\u2587", "\u2588"};
  const std::uint64_t t0 = samples.front().t_ns, t1 = samples.back().t_ns;
  const std::size_t cols = std::min(width, samples.size());
  // Per column: CPU is the average over the column (from the cumulative counters, so a
  // short interval cannot spike), RSS the peak. Columns no sample falls in repeat the
  // previous one. A sample of an empty tree (the one after the exit) shows no CPU: its
  // counters only catch up with the exact totals from wait4, nothing ran then.
  std::vector<double> cpu(cols, -1), rss(cols, -1);
  std::vector<std::uint64_t> last_cpu(cols, 0), last_t(cols, 0);
  std::vector<bool> live(cols, false);
  for (const auto& s : samples) {
    const double f = t1 > t0 ? static_cast<double>(s.t_ns - t0) / static_cast<double>(t1 - t0) : 0;
    const std::size_t c = std::min(cols - 1, static_cast<std::size_t>(f * static_cast<double>(cols)));
    rss[c] = std::max(rss[c], static_cast<double>(s.rss_bytes));
    cpu[c] = 0;
    if (s.processes == 0 && &s != &samples.front()) continue;
    last_cpu[c] = s.cpu_user_ns + s.cpu_sys_ns;
    last_t[c] = s.t_ns;
    live[c] = true;
  }
  std::uint64_t prev_cpu = samples.front().cpu_user_ns + samples.front().cpu_sys_ns, prev_t = t0;
  for (std::size_t c = 0; c < cols; ++c) {
    if (cpu[c] < 0) {  // empty column
      cpu[c] = c > 0 ? cpu[c - 1] : 0;
      rss[c] = c > 0 ? rss[c - 1] : 0;
      continue;
    }
    if (!live[c]) continue;  // only samples of an empty tree: 0
    if (last_t[c] > prev_t) {
      cpu[c] = 100.0 * static_cast<double>(last_cpu[c] - std::min(last_cpu[c], prev_cpu)) /
               static_cast<double>(last_t[c] - prev_t);
      prev_cpu = last_cpu[c];
      prev_t = last_t[c];
    } else if (c > 0) {
      cpu[c] = cpu[c - 1];
    }
  }
  auto line = [&](const char* name, const std::vector<double>& v, const std::string& peak) {
    const double mx = *std::max_element(v.begin(), v.end());
    std::string out = std::string("  ") + name + " |";
    for (double x : v) {
      const auto level = mx > 0 ? static_cast<std::size_t>(x / mx * 8.0 + 0.5) : 0;
      out += kBlocks[std::min<std::size_t>(level, 8)];
    }
    return out + "| peak " + peak + "\n";
  };
  const double max_cpu = *std::max_element(cpu.begin(), cpu.end());
  const double max_rss = *std::max_element(rss.begin(), rss.end());
  std::string out = line("CPU", cpu, fmt("%.0f%%", max_cpu));
  out += line("RSS", rss, format_bytes(static_cast<std::uint64_t>(max_rss)));
  out += "       0" + std::string(cols > 8 ? cols - 8 : 0, ' ') +
         format_seconds(static_cast<double>(t1 - t0) / 1e9) + "\n";
  return out;
}

std::string history_table(const std::vector<monitor::RunRecord>& runs) {
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%6s  %-19s  %-24s  %10s  %10s  %11s  %4s  %s\n", "ID", "STARTED", "LABEL",
                "WALL", "CPU", "PEAK RSS", "EXIT", "NOTE");
  out += buf;
  for (const auto& r : runs) {
    std::string label = r.label.size() > 24 ? r.label.substr(0, 23) + "~" : r.label;
    std::snprintf(buf, sizeof buf, "%6lld  %-19s  %-24s  %10s  %10s  %11s  %4d  %s\n",
                  static_cast<long long>(r.id), format_time(r.start_unix_ns).c_str(), label.c_str(),
                  format_seconds(static_cast<double>(r.duration_ns) / 1e9).c_str(),
                  format_seconds(cpu_s(r)).c_str(), format_bytes(r.max_rss_bytes).c_str(), r.exit_code,
                  outcome(r).c_str());
    out += buf;
  }
  return out;
}

std::string limits_text(const monitor::RunRecord& r) {
  const monitor::RunLimits& l = r.limits;
  std::string out;
  const auto add = [&out](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (l.timeout_ns) add("timeout " + format_seconds(static_cast<double>(*l.timeout_ns) / 1e9));
  if (l.max_rss_bytes) {
    add("max RSS " + format_bytes(*l.max_rss_bytes) +
        (r.max_rss_source.empty() ? std::string() : " on " + r.max_rss_source));
  }
  if (l.max_cpu_seconds) add("max CPU " + format_seconds(*l.max_cpu_seconds));
  if (out.empty()) out = l.kill.empty() ? "none recorded" : "none";
  if (!l.kill.empty()) {
    out += "; kill " + l.kill;
    if (l.grace_ns) out += ", grace " + format_seconds(static_cast<double>(*l.grace_ns) / 1e9);
  }
  return out;
}

std::string run_details(const monitor::RunRecord& r) {
  std::string out =
      "run " + std::to_string(r.id) + "  [" + r.label + "]  exit " + std::to_string(r.exit_code);
  const std::string o = outcome(r);
  if (!o.empty()) out += "  " + o;
  out += "\n";
  out += "  command   " + command_line(r) + "\n";
  out += "  cwd       " + r.cwd + "\n";
  out += "  host      " + r.host + (r.git_commit.empty() ? "" : "  git " + r.git_commit) + "\n";
  out += "  started   " + format_time(r.start_unix_ns) + "  wall " +
         format_seconds(static_cast<double>(r.duration_ns) / 1e9) + "\n";
  out += "  cpu       " + format_seconds(static_cast<double>(r.user_cpu_ns) / 1e9) + " user + " +
         format_seconds(static_cast<double>(r.sys_cpu_ns) / 1e9) + " sys\n";
  out += "  memory    peak RSS " + format_bytes(r.max_rss_bytes) + "  tree peak " +
         format_bytes(r.peak_tree_rss_bytes) + "\n";
  out += tree_line(r, "  tree      ");
  out += "  limits    " + limits_text(r) + "\n";
  out += "  io        read " + format_bytes(r.read_bytes) + "  written " + format_bytes(r.write_bytes) +
         "  rchar " + format_bytes(r.rchar) + "  wchar " + format_bytes(r.wchar) + "\n";
  out += "  procs     " + std::to_string(r.peak_processes) + " processes, " + std::to_string(r.peak_threads) +
         " threads at peak; ctx switches " + std::to_string(r.vol_ctx) + " voluntary, " +
         std::to_string(r.invol_ctx) + " involuntary; faults " + std::to_string(r.minflt) + " minor, " +
         std::to_string(r.majflt) + " major\n";
  out += metric_lines(r, "  metrics   ", 4);
  out += detection_lines(r, "  detected  ", 50, " (show --json lists all)");
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::cli
