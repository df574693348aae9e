#pragma once
// The history the page tests read: runs inserted through the History API with a known
// change point, regression and anomalies, a label whose latest run failed, real runs of
// `spyglass run`, and alerts written by sqlite3 (the table as other writers fill it).

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../monitor/support.hpp"
#include "spyglass/monitor/history.hpp"

namespace spyglass_test {

namespace mon = spyglass::monitor;

/// What was seeded, for the assertions.
struct Seeded {
  std::string db;
  std::vector<std::int64_t> ids;     ///< label "seeded", oldest first (48 runs, all successful)
  std::vector<double> wall;          ///< their wall times (s)
  std::vector<double> max_rss;       ///< their peak RSS (bytes)
  std::int64_t change_run = 0;       ///< the first run of the slower segment (index 40)
  std::vector<std::int64_t> spikes;  ///< the runs whose peak RSS is an anomaly (12 and 27)
  std::int64_t sampled_run = 0;      ///< the newest seeded run: 20 samples, one detection, limits
  std::int64_t failed_run = 0;       ///< the latest run of label "flaky" (exit 2)
  std::vector<std::int64_t> alerts;  ///< alert ids
};

constexpr std::size_t kSeededRuns = 48, kChangeAt = 40;

inline Seeded seed_history(const std::string& dir) {
  Seeded s;
  s.db = dir + "/history.db";
  {
    auto h = mon::History::open(s.db);
    const std::int64_t t0 = 1795000000LL * 1000000000LL;
    for (std::size_t i = 0; i < kSeededRuns; ++i) {
      mon::RunRecord r;
      r.label = "seeded";
      r.command = "build";
      r.args = {"--all"};
      r.host = "ci";
      r.git_commit = "abc" + std::to_string(i);
      r.start_unix_ns = t0 + static_cast<std::int64_t>(i) * 60000000000LL;
      const double wall = (i < kChangeAt ? 1.0 : 1.5) + 0.01 * static_cast<double>(i % 5);
      r.duration_ns = static_cast<std::int64_t>(wall * 1e9);
      r.end_unix_ns = r.start_unix_ns + r.duration_ns;
      r.user_cpu_ns = 500000000 + 1000000 * (i % 3);
      r.sys_cpu_ns = 100000000;
      r.max_rss_bytes = (i == 12 || i == 27) ? 400ULL << 20 : (100ULL << 20) + (i % 7) * 65536;
      r.peak_tree_rss_bytes = r.max_rss_bytes + (1 << 20);
      r.tree_peak_memory_bytes = r.peak_tree_rss_bytes;
      r.write_bytes = (1 << 20) + 4096 * (i % 3);
      std::vector<mon::Sample> samples;
      if (i + 1 == kSeededRuns) {
        for (std::uint64_t k = 0; k < 20; ++k) {
          mon::Sample x;
          x.t_ns = 1000 + k * 100000000;  // relative to t0_ns = 1000 below
          x.processes = 1;
          x.cpu_user_pct = 50.0 + static_cast<double>(k);
          x.cpu_user_ns = k * 50000000;
          x.rss_bytes = (10 + k) << 20;
          x.read_bytes = k * 4096;
          samples.push_back(x);
        }
        r.detections.push_back({1000000000, "rss", "leak", 20.0 * (1 << 20), 1048576.0, "growth"});
        r.stdout_tail = "line <1> & \"two\"\nsecond line\n";
        r.stderr_tail = "warning: <stderr>\n";
        r.limits = {.timeout_ns = 30000000000,
                    .max_rss_bytes = 64u << 20,
                    .max_cpu_seconds = 4.0,
                    .kill = "graceful",
                    .grace_ns = 5000000000};
        r.max_rss_source = "pss";
      }
      h.insert(r, samples, 1000);
      s.ids.push_back(r.id);
      s.wall.push_back(static_cast<double>(r.duration_ns) / 1e9);
      s.max_rss.push_back(static_cast<double>(r.max_rss_bytes));
      if (i == kChangeAt) s.change_run = r.id;
      if (i == 12 || i == 27) s.spikes.push_back(r.id);
    }
    s.sampled_run = s.ids.back();
    for (int i = 0; i < 2; ++i) {
      mon::RunRecord r;
      r.label = "flaky";
      r.command = "test";
      r.start_unix_ns = t0 + (100 + i) * 60000000000LL;
      r.duration_ns = 2000000000;
      r.exit_code = i == 0 ? 0 : 2;
      h.insert(r, {}, 0);
      s.failed_run = r.id;
    }
  }
  // Real runs, recorded by the command itself.
  for (int i = 0; i < 3; ++i) {
    const auto res = run({kSpyglass, "run", "--quiet", "--db", s.db, "--label", "real", "--", "sh", "-c",
                          "echo out-" + std::to_string(i) + "; echo err >&2"},
                         dir);
    EXPECT_EQ(res.exit_code, 0) << res.err;
  }
  const std::string sql =
      "INSERT INTO alerts(run_id, label, rule, created_unix_ns, kind, metric, severity, value, baseline, "
      "message) "
      "VALUES (" +
      std::to_string(s.sampled_run) +
      ", 'seeded', 'slower', 1795003000000000000, 'regression', 'wall', 'warning', 1.52, 1.02, 'wall +49% "
      "<since run " +
      std::to_string(s.change_run) +
      ">'), (NULL, 'flaky', 'failed', 1795006000000000000, 'run_failed', NULL, 'critical', "
      "NULL, NULL, 'exit 2'); "
      "INSERT INTO alert_deliveries(alert_id, channel, attempt, unix_ns, outcome, detail) SELECT id, 'ops', "
      "1, "
      "created_unix_ns, 'failed', 'HTTP 503' FROM alerts WHERE label = 'seeded'; "
      "INSERT INTO alert_deliveries(alert_id, channel, attempt, unix_ns, outcome, detail) SELECT id, 'ops', "
      "2, "
      "created_unix_ns, 'delivered', 'HTTP 200' FROM alerts WHERE label = 'seeded'; "
      "SELECT id FROM alerts ORDER BY id;";
  const auto res = run({"sqlite3", s.db, sql}, dir);
  EXPECT_EQ(res.exit_code, 0) << res.err;
  std::istringstream in(res.out);
  for (std::int64_t id; in >> id;) s.alerts.push_back(id);
  EXPECT_EQ(s.alerts.size(), 2u);
  return s;
}

/// `spyglass serve` on a free loopback port, stopped with SIGTERM at the end.
class Server {
 public:
  Server(const std::string& db, const std::string& dir)
      : child_({kSpyglass, "serve", "--db", db, "--addr", "127.0.0.1:0"}, dir) {
    // The bound address is the first line on stdout: wait for it, not for a time.
    const std::string out = dir + "/.child" + std::to_string(::getpid());
    wait_until(
        [&] {
          for (const auto& e : std::filesystem::directory_iterator(dir)) {
            const std::string p = e.path().string();
            if (p.rfind(out, 0) == 0 && p.size() > 4 && p.substr(p.size() - 4) == ".out") {
              const std::string text = slurp(p);
              const auto at = text.find("serving http://");
              const auto nl = text.find('\n', at);
              if (at != std::string::npos && nl != std::string::npos) {
                url_ = text.substr(at + 8, text.find(' ', at + 8) - at - 8);
                return true;
              }
            }
          }
          return !alive(child_.pid());
        },
        kWaitLimit);
  }
  ~Server() { stop(); }
  /// "http://127.0.0.1:PORT/", empty when the server did not start.
  [[nodiscard]] const std::string& url() const { return url_; }
  Result stop() {
    if (stopped_) return {};
    stopped_ = true;
    ::kill(child_.pid(), SIGTERM);
    return child_.wait();
  }

 private:
  Child child_;
  std::string url_;
  bool stopped_ = false;
};

}  // namespace spyglass_test
