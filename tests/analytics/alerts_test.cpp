// Alerts: the rules file's errors, rule evaluation (adaptive thresholds checked with
// NumPy), dedup, and delivery to real receivers: a loopback HTTP server for the webhook and
// Slack payloads (read back by Python's json), aiosmtpd for mail (read by Python's email
// module), a refused and a silent channel bounded by the delivery budget, and secrets kept
// out of the history file and the logs.

#include "alerts.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "../monitor/support.hpp"
#include "../support/otlp_receiver.hpp"
#include "analyze.hpp"
#include "spyglass/monitor/analytics.hpp"
#include "spyglass/monitor/history.hpp"

namespace al = spyglass::alerts;
namespace mon = spyglass::monitor;
using spyglass_test::kSpyglass;
using spyglass_test::run;
using spyglass_test::slurp;
using spyglass_test::TempDir;

namespace {

const std::string kPython = PYTHON3;
const std::string kPeers = ALERT_PEERS_PY;

std::string peer(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kPython, kPeers};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = run(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// What Python's json module reads in `text`, re-dumped with sorted keys.
std::string python_json(const TempDir& dir, const std::string& text) {
  static int n = 0;
  const std::string path = dir / ("body" + std::to_string(n++) + ".json");
  std::ofstream(path, std::ios::binary) << text;
  return peer({"json", path});
}

al::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& k) -> std::optional<std::string> {
    const auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string error_of(const std::string& text, const al::EnvLookup& env = env_of({})) {
  try {
    al::parse_rules(text, "rules.json", env);
  } catch (const al::RuleError& e) {
    return e.what();
  }
  return "(no error)";
}

mon::RunRecord run_of(const std::string& label, std::int64_t id, double wall_s, int exit_code = 0) {
  mon::RunRecord r;
  r.id = id;
  r.label = label;
  r.command = "job";
  r.start_unix_ns = (1764547200LL + 3600LL * id) * 1000000000LL;
  r.duration_ns = static_cast<std::int64_t>(std::llround(wall_s * 1e9));
  r.end_unix_ns = r.start_unix_ns + r.duration_ns;
  r.max_rss_bytes = 100ull << 20;
  r.exit_code = exit_code;
  return r;
}

// A fixed alert, as a rule would raise it.
al::Alert sample_alert(std::vector<std::string> channels) {
  al::Alert a;
  a.rule = "slow-build";
  a.label = "nightly <main>";
  a.metric = "wall";
  a.severity = "critical";
  a.condition = al::Condition::threshold;
  a.run_id = 42;
  a.created_unix_ns = 1764597600000000000LL;  // 2025-12-01T14:00:00Z
  a.value = 2.5;
  a.threshold = 2;
  a.message = "[slow-build] nightly <main>: wall 2.50 s in run 42 > 2.00 s & rising";
  a.channels = std::move(channels);
  return a;
}

al::RuleSet rules_with(const std::string& channels_json, const std::string& delivery_json,
                       const al::EnvLookup& env) {
  return al::parse_rules(
      R"({"channels": )" + channels_json + R"(, "delivery": )" + delivery_json + R"(, "rules": []})",
      "rules.json", env);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Every error names the file, the line and the field.
TEST(AlertRules, ErrorsNameLineAndField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"rules\": [\n  {\"name\": \"a\", \"metric\": \"wall\", \"value\": 1,\n   \"condition\": "
       "\"treshold\"}\n]}",
       "rules.json:3: rules[0].condition: unknown condition \"treshold\" (threshold, anomaly, change_point, "
       "regression, forecast_breach, run_failed, killed_by_limit, spike, leak)"},
      {"{\"rules\": [{\"name\": \"a\", \"condition\": \"threshold\", \"metric\": \"wal l\", \"value\": 1}]}",
       "rules.json:1: rules[0].metric: unknown metric \"wal l\" (wall, cpu_user, cpu_sys, max_rss, "
       "tree_peak_rss, read_bytes, write_bytes, or a custom metric's name)"},
      {"{\"rules\": [{\"name\": \"a\", \"condition\": \"threshold\", \"metric\": \"wall\",\n \"value\": \"2 "
       "parsecs\"}]}",
       "rules.json:2: rules[0].value: not a duration (a number with us, ms, s, m or h)"},
      {"{\"rules\": [{\"name\": \"a\", \"condition\": \"threshold\", \"metric\": \"max_rss\", \"value\": "
       "\"2x\"}]}",
       "rules.json:1: rules[0].value: not a size (a number with B, K, KiB, M, MiB, G or GiB)"},
      {"{\"rules\": [{\"name\": \"a\", \"condition\": \"threshold\", \"metric\": \"wall\"}]}",
       "rules.json:1: rules[0]: a threshold rule needs either \"value\" or \"adaptive\""},
      {"{\"rules\": [{\"name\": \"a\", \"condition\": \"run_failed\", \"channels\": [\"pager\"]}]}",
       "rules.json:1: rules[0].channels: unknown channel \"pager\""},
      {"{\"rules\": [{\"name\": \"a\", \"condition\": \"run_failed\",\n\n \"severty\": \"info\"}]}",
       "rules.json:3: rules[0].severty: unknown field"},
      {"{\"rules\": [{\"name\": \"a\", \"condition\": \"run_failed\", \"severity\": \"loud\"}]}",
       "rules.json:1: rules[0].severity: expected info, warning or critical, got \"loud\""},
      {"{\"rules\": [{\"name\": \"a\", \"condition\": \"run_failed\", \"dedup\": \"soon\"}]}",
       "rules.json:1: rules[0].dedup: not a duration (a number with us, ms, s, m or h)"},
      {"{\"rules\": [{\"name\": \"a\", \"condition\": \"run_failed\"}, {\"name\": \"a\", \"condition\": "
       "\"killed_by_limit\"}]}",
       "rules.json:1: rules[1].name: duplicate rule name \"a\""},
      {"{\"rules\": [{\"name\": \"a\", \"condition\": \"spike\", \"metric\": \"disk\"}]}",
       "rules.json:1: rules[0].metric: unknown metric \"disk\" (cpu or rss)"},
      {"{\"rules\": [{\"condition\": \"run_failed\"}]}", "rules.json:1: rules[0].name: missing"},
      {"{\"channels\": {\"hook\": {\"type\": \"webhook\",\n \"url\": \"${HOOK_URL}\"}}, \"rules\": []}",
       "rules.json:2: channels.hook.url: environment variable HOOK_URL is not set"},
      {"{\"channels\": {\"hook\": {\"type\": \"pager\", \"url\": \"http://x\"}}, \"rules\": []}",
       "rules.json:1: channels.hook.type: unknown channel type \"pager\" (webhook, slack or email)"},
      {"{\"channels\": {\"m\": {\"type\": \"email\", \"url\": \"smtp://x:25\", \"from\": \"a@b\", \"to\": "
       "\"c@d\",\n \"password\": \"hunter2\"}}, \"rules\": []}",
       "rules.json:2: channels.m.password: must be an environment reference such as \"${SMTP_PASSWORD}\", "
       "not a "
       "literal"},
      {"{\"channels\": {\"m\": {\"type\": \"email\", \"url\": \"http://x\", \"from\": \"a@b\", \"to\": "
       "\"c@d\"}}, "
       "\"rules\": []}",
       "rules.json:1: channels.m.url: expected a smtp:// or smtps:// URL"},
      {"{\"delivery\": {\"budget\": -1}, \"rules\": []}",
       "rules.json:1: delivery.budget: not a duration (a number with us, ms, s, m or h)"},
      {"{}", "rules.json:1: rules: missing"},
      {"{\"rules\": [\n{\"name\": \"a\",, }]}",
       "rules.json:2: not valid JSON: The JSON document has an improper structure: missing or superfluous "
       "commas, "
       "braces, missing keys, etc."},
  };
  for (const auto& [text, want] : cases) EXPECT_EQ(error_of(text), want) << text;
}

// Lines are counted as the parser reads forward: an error far into a long file still
// names its line, and one before the last value read too.
TEST(AlertRules, ErrorLinesInALongFile) {
  std::string text = "{\"rules\": [\n";
  for (int i = 0; i < 100; ++i) {
    text += std::string(i == 0 ? "" : ",\n") + R"({"name": "r)" + std::to_string(i) + R"(", "condition": )" +
            (i == 73 ? R"("run_faild"})" : R"("run_failed"})");
  }
  EXPECT_EQ(error_of(text + "\n]}"),
            "rules.json:75: rules[73].condition: unknown condition \"run_faild\" (threshold, anomaly, "
            "change_point, regression, forecast_breach, run_failed, killed_by_limit, spike, leak)");
  text = "{\"rules\": [\n";
  for (int i = 0; i < 100; ++i)
    text += std::string(i == 0 ? "" : ",\n") + R"({"name": "same", "condition": "run_failed"})";
  EXPECT_EQ(error_of(text + "\n]}"), "rules.json:3: rules[1].name: duplicate rule name \"same\"");
}

TEST(AlertRules, ParsesUnitsEnvAndDefaults) {
  const auto set = al::parse_rules(R"({
  "channels": {
    "ops": {"type": "webhook", "url": "http://127.0.0.1:9/hook?token=${TOKEN}"},
    "mail": {"type": "email", "url": "smtp://127.0.0.1:25", "from": "ci@example.org",
             "to": ["a@example.org", "b@example.org"], "username": "ci", "password": "${SMTP_PASSWORD}"}
  },
  "delivery": {"attempts": 2, "backoff": "50ms", "timeout": "1s", "budget": "3s"},
  "rules": [
    {"name": "slow", "label": "nightly", "metric": "wall", "condition": "threshold", "op": ">=", "value": "1.5m",
     "channels": ["ops", "mail"], "dedup": "10m", "severity": "critical"},
    {"name": "fat", "metric": "max_rss", "condition": "threshold", "value": "512MiB", "channels": "ops"},
    {"name": "adaptive", "label": "*", "metric": "wall", "condition": "threshold", "adaptive": {"k": 2.5}},
    {"name": "costs $$5", "condition": "leak"}
  ]
})",
                                   "r.json", env_of({{"TOKEN", "t0k"}, {"SMTP_PASSWORD", "pw"}}));
  ASSERT_EQ(set.channels.size(), 2u);
  EXPECT_EQ(set.channels[0].url, "http://127.0.0.1:9/hook?token=t0k");
  EXPECT_EQ(set.channels[1].password, "pw");
  EXPECT_EQ(set.channels[1].to, (std::vector<std::string>{"a@example.org", "b@example.org"}));
  EXPECT_EQ(set.delivery.attempts, 2);
  EXPECT_DOUBLE_EQ(set.delivery.backoff, 0.05);
  EXPECT_DOUBLE_EQ(set.delivery.budget, 3);
  ASSERT_EQ(set.rules.size(), 4u);
  EXPECT_EQ(set.rules[0].label, "nightly");
  EXPECT_EQ(set.rules[0].op, ">=");
  EXPECT_DOUBLE_EQ(set.rules[0].value, 90);
  EXPECT_DOUBLE_EQ(set.rules[0].dedup_seconds, 600);
  EXPECT_EQ(set.rules[0].line, 9u);
  EXPECT_DOUBLE_EQ(set.rules[1].value, 512.0 * 1024 * 1024);
  EXPECT_EQ(set.rules[1].channels, std::vector<std::string>{"ops"});
  EXPECT_EQ(set.rules[1].severity, "warning");
  EXPECT_DOUBLE_EQ(set.rules[1].dedup_seconds, 3600);
  EXPECT_EQ(set.rules[2].label, "");
  EXPECT_DOUBLE_EQ(*set.rules[2].adaptive_k, 2.5);
  EXPECT_EQ(set.rules[3].name, "costs $5");
}

TEST(AlertRules, ThresholdAndRunState) {
  const auto set = al::parse_rules(R"({"rules": [
    {"name": "slow", "metric": "wall", "condition": "threshold", "value": "2s"},
    {"name": "other-label", "label": "weekly", "metric": "wall", "condition": "threshold", "value": "1s"},
    {"name": "failed", "condition": "run_failed"},
    {"name": "killed", "condition": "killed_by_limit", "severity": "critical"}
  ]})",
                                   "r.json");
  auto fast = run_of("nightly", 1, 1.5);
  EXPECT_TRUE(al::evaluate_run(set, {fast}, 1).empty());
  auto slow = run_of("nightly", 2, 2.5, 3);
  auto a = al::evaluate_run(set, {slow}, 7);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].rule, "slow");
  EXPECT_DOUBLE_EQ(a[0].value, 2.5);
  EXPECT_DOUBLE_EQ(a[0].threshold, 2);
  EXPECT_EQ(a[0].run_id, 2);
  EXPECT_EQ(a[0].created_unix_ns, 7);
  EXPECT_EQ(a[0].message, "[slow] nightly: wall 2.50 s in run 2 > 2.00 s");
  EXPECT_EQ(a[1].rule, "failed");
  EXPECT_EQ(a[1].message, "[failed] nightly: run 2 exited with 3");
  auto killed = run_of("nightly", 3, 1, 124);
  killed.kill_reason = "timeout";
  a = al::evaluate_run(set, {killed}, 7);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].rule, "killed");
  EXPECT_EQ(a[0].message, "[killed] nightly: run 3 killed by a limit: timeout");
}

// A custom metric the runs recorded: thresholds in its own unit; a run without it alerts on nothing.
TEST(AlertRules, CustomMetricThreshold) {
  const auto set = al::parse_rules(R"({"rules": [
    {"name": "slow-items", "metric": "items_per_s", "condition": "threshold", "op": "<", "value": 1000},
    {"name": "lat", "metric": "lat", "condition": "threshold", "value": "200ms"}
  ]})",
                                   "r.json");
  auto ok = run_of("nightly", 1, 1);
  ok.metrics = {{"items_per_s", 1500, ""}, {"lat", 0.1, "s"}};
  EXPECT_TRUE(al::evaluate_run(set, {ok}, 1).empty());
  auto bad = run_of("nightly", 2, 1);
  bad.metrics = {{"items_per_s", 900, ""}, {"lat", 0.25, "s"}};
  const auto a = al::evaluate_run(set, {bad, ok}, 7);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].message, "[slow-items] nightly: items_per_s 900 in run 2 < 1000");
  EXPECT_EQ(a[1].message, "[lat] nightly: lat 250 ms in run 2 > 200 ms");
  EXPECT_TRUE(al::evaluate_run(set, {run_of("nightly", 3, 1), bad}, 1).empty());
}

// median + k·MAD of the previous successful runs, as NumPy computes it.
TEST(AlertRules, AdaptiveThresholdMatchesNumPy) {
  const auto set = al::parse_rules(R"({"rules": [
    {"name": "adaptive", "metric": "wall", "condition": "threshold", "adaptive": {"k": 3, "baseline": 8}}
  ]})",
                                   "r.json");
  const std::vector<double> past = {1.00, 1.04, 0.97, 1.10, 1.02, 0.99, 1.21, 1.01, 9.0 /* failed */,
                                    1.03, 0.98};
  std::vector<mon::RunRecord> runs;  // newest first
  std::vector<std::string> args = {"mad", "3"};
  std::size_t used = 0;
  for (std::size_t i = past.size(); i-- > 0;) {
    const bool failed = past[i] == 9.0;
    runs.push_back(run_of("job", static_cast<std::int64_t>(i + 1), past[i], failed ? 1 : 0));
    if (!failed && used < 8) {
      args.push_back(std::to_string(past[i]));
      ++used;
    }
  }
  const double want = std::stod(peer(args));
  auto check = [&](double wall) {
    auto cur = run_of("job", 100, wall);
    std::vector<mon::RunRecord> all = {cur};
    all.insert(all.end(), runs.begin(), runs.end());
    return al::evaluate_run(set, all, 1);
  };
  const auto above = check(want * 1.01);
  ASSERT_EQ(above.size(), 1u);
  EXPECT_NEAR(above[0].threshold, want, 1e-9 * want);
  EXPECT_TRUE(check(want * 0.99).empty());
  // Too few baseline runs: the rule stays quiet rather than guess.
  auto lone = run_of("job", 100, 50);
  EXPECT_TRUE(al::evaluate_run(set, {lone, runs[0], runs[1]}, 1).empty());
}

// The history conditions fire on a label whose last runs shifted, and stay quiet on one
// that did not.
TEST(AlertRules, HistoryConditions) {
  const auto set = al::parse_rules(R"({"rules": [
    {"name": "outlier", "metric": "wall", "condition": "anomaly"},
    {"name": "shift", "metric": "wall", "condition": "change_point", "recent": 8},
    {"name": "regressed", "metric": "wall", "condition": "regression"},
    {"name": "towards-2s", "metric": "wall", "condition": "forecast_breach", "limit": "2s", "horizon": 20}
  ]})",
                                   "r.json");
  // 40 runs at 1 s ± 1%, newest first; `shifted` makes the newest 6 runs 1.5 s.
  auto label = [](bool shifted, double trend) {
    std::vector<mon::RunRecord> runs;
    for (int i = 40; i >= 1; --i) {
      const double noise = 0.01 * std::sin(i * 2.3);
      const double wall = (shifted && i > 34 ? 1.5 : 1.0) + noise + trend * i;
      runs.push_back(run_of("job", i, wall));
    }
    return runs;
  };
  std::vector<std::string> fired;
  for (const auto& a : al::evaluate_run(set, label(true, 0), 1)) fired.push_back(a.rule);
  EXPECT_EQ(fired, (std::vector<std::string>{"outlier", "shift", "regressed"}));
  EXPECT_TRUE(al::evaluate_run(set, label(false, 0), 1).empty());
  // A steady climb of 0.02 s per run, at 1.8 s now, reaches 2 s within 20 runs.
  const auto climbing = al::evaluate_run(set, label(false, 0.02), 1);
  const auto it = std::find_if(climbing.begin(), climbing.end(),
                               [](const al::Alert& a) { return a.rule == "towards-2s"; });
  ASSERT_NE(it, climbing.end());
  EXPECT_EQ(it->message.rfind("[towards-2s] job: wall reaches 2.00 s in about ", 0), 0u) << it->message;
  for (const auto& a : al::evaluate_run(set, label(false, 0.005), 1))
    EXPECT_NE(a.rule, "towards-2s");  // 160 runs away
}

// A change-point rule skips the permutation test when the segmentation cuts nothing
// recent: the test only drops cuts. On many seeded series, shifted anywhere by anything
// from noise to 5 sigma (or not at all), the rules fire exactly when the full analysis,
// as `gate` runs it on the window, finds a significant change point that recent.
TEST(AlertRules, ChangePointRulesMatchTheFullAnalysis) {
  const auto set = al::parse_rules(R"({"rules": [
    {"name": "r3", "metric": "wall", "condition": "change_point", "recent": 3},
    {"name": "r5", "metric": "wall", "condition": "change_point"},
    {"name": "r12", "metric": "wall", "condition": "change_point", "recent": 12, "window": 30}
  ]})",
                                   "r.json");
  std::size_t fired = 0, candidate_only = 0;
  for (unsigned seed = 1; seed <= 300; ++seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0, 0.02);
    const int n = 70;
    // Half the shifts among the newest 16 runs, where the rules look; at >= n: no shift.
    const int at = seed % 2 == 0 ? n - 2 - static_cast<int>(rng() % 15) : static_cast<int>(rng() % 75);
    const double shift = 0.1 * static_cast<double>(rng() % 6), spread = rng() % 4 == 0 ? 3.0 : 1.0;
    std::vector<mon::RunRecord> runs;  // newest first
    for (int i = n; i >= 1; --i) {
      const bool after = i > at;
      runs.push_back(run_of("job", i, 1.0 + (after ? shift : 0.0) + noise(rng) * (after ? spread : 1.0)));
    }
    std::vector<std::string> got, want;
    for (const auto& a : al::evaluate_run(set, runs, 1)) got.push_back(a.rule);
    for (const auto& r : set.rules) {
      const std::vector<mon::RunRecord> window(runs.begin(),
                                               runs.begin() + static_cast<std::ptrdiff_t>(r.window));
      spyglass::cli::HistoryAnalyzeOptions o;
      o.label = "job";
      const auto c = spyglass::cli::check_metric(window, "wall", o);
      const std::size_t m = c.run_ids.size();
      const auto recent = [&](std::size_t i) { return i + r.recent >= m; };
      if (std::any_of(c.change_points.begin(), c.change_points.end(),
                      [&](const auto& cp) { return recent(cp.index); })) {
        want.push_back(r.name);
        continue;
      }
      std::vector<double> xs;
      for (auto it = window.rbegin(); it != window.rend(); ++it)
        xs.push_back(spyglass::cli::history_metric(*it, "wall"));
      spyglass::analytics::ChangePointOptions untested;
      untested.permutations = 0;
      for (const auto& cp : spyglass::analytics::change_points(xs, untested))
        candidate_only += recent(cp.index);
    }
    EXPECT_EQ(got, want) << "seed " << seed;
    fired += want.size();
  }
  // Both paths were taken: rules that fired, and recent cuts the test dropped.
  EXPECT_GT(fired, 100u) << candidate_only;
  EXPECT_GT(candidate_only, 10u) << fired;
}

TEST(AlertRules, LiveFindings) {
  const auto set = al::parse_rules(R"({"rules": [
    {"name": "cpu-spike", "metric": "cpu", "condition": "spike"},
    {"name": "leak", "condition": "leak", "label": "nightly"}
  ]})",
                                   "r.json");
  spyglass::analytics::LiveFinding spike{2.5, "cpu", "spike", "ewma", 180, 7.5};
  auto a = al::evaluate_live(set, "nightly", spike, 1);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].message,
            "[cpu-spike] nightly: CPU spike to 180% CPU (ewma score 7.5) at 2.5 s, while the run goes on");
  spyglass::analytics::LiveFinding leak{70, "rss", "leak", "growth", 300.0 * 1024 * 1024, 2.0 * 1024 * 1024};
  EXPECT_EQ(al::evaluate_live(set, "nightly", leak, 1).size(), 1u);
  EXPECT_TRUE(al::evaluate_live(set, "weekly", leak, 1).empty());
  spyglass::analytics::LiveFinding rss_spike{3, "rss", "spike", "ewma", 1e9, 9};
  EXPECT_TRUE(al::evaluate_live(set, "nightly", rss_spike, 1).empty());
}

// The same rule on the same label alerts once per dedup window, across runs.
TEST(AlertRules, DedupAcrossRunsThroughTheHistory) {
  TempDir dir;
  const auto set = al::parse_rules(R"({"rules": [
    {"name": "failed", "condition": "run_failed", "dedup": "1h"},
    {"name": "failed-always", "condition": "run_failed", "dedup": 0}
  ]})",
                                   "r.json");
  auto h = mon::History::open(dir / "h.db");
  for (int i = 0; i < 2; ++i) {
    auto r = run_of("job", 0, 1, 1);
    h.insert(r, {}, 0);
    al::RunAlerts ra(set, "job", &h);
    const auto done = ra.finish({r}, r.id);
    ASSERT_EQ(done.size(), i == 0 ? 2u : 1u) << i;
    EXPECT_EQ(done.back().alert.rule, "failed-always");
  }
  const auto stored = h.alerts({});
  ASSERT_EQ(stored.size(), 3u);
  EXPECT_EQ(stored[0].rule, "failed-always");
  EXPECT_EQ(stored[0].run_id, 2);
  EXPECT_EQ(stored[0].kind, "run_failed");
}

// A version 6 history (alerts but no deliveries) is migrated by the next writable open;
// the stored alert and attempts read back through sqlite3 as written.
TEST(AlertRules, HistoryV6MigratesAndStoresDeliveries) {
  TempDir dir;
  const std::string db = dir / "h.db";
  {
    auto h = mon::History::open(db, {.schema_version = 6});
    auto r = run_of("job", 0, 1);
    h.insert(r, {}, 0);
    EXPECT_TRUE(h.alerts({}).empty());
  }
  auto h = mon::History::open(db);
  EXPECT_EQ(h.schema_version(), mon::History::kSchemaVersion);
  mon::AlertRecord a;
  a.run_id = 1;
  a.label = "job";
  a.rule = "slow";
  a.created_unix_ns = 5;
  a.kind = "threshold";
  a.metric = "wall";
  a.severity = "warning";
  a.message = "m";
  a.value = 2.5;
  a.baseline = std::nan("");
  a.deliveries = {{"ops", 1, 6, "failed", "HTTP 503"}, {"ops", 2, 7, "delivered", "HTTP 200"}};
  EXPECT_EQ(h.insert_alert(a), 1);
  EXPECT_EQ(h.last_alert_unix_ns("job", "slow"), 5);
  EXPECT_FALSE(h.last_alert_unix_ns("job", "other"));
  const auto r = run(
      {"sqlite3", db,
       "SELECT a.rule, a.value, quote(a.baseline), d.channel, d.attempt, d.outcome, d.detail FROM alerts a "
       "JOIN alert_deliveries d ON d.alert_id = a.id ORDER BY d.attempt;"});
  EXPECT_EQ(r.out, "slow|2.5|NULL|ops|1|failed|HTTP 503\nslow|2.5|NULL|ops|2|delivered|HTTP 200\n");
}

TEST(AlertDelivery, WebhookPayloadExactlyAndRetriedAfterAnError) {
  TempDir dir;
  spyglass_test::Receiver rx;
  rx.push({spyglass_test::Reply::respond, 500, {}, "", "text/plain"});
  rx.set_default({spyglass_test::Reply::respond, 200, {}, "ok", "text/plain"});
  const auto set = rules_with(R"({"ops": {"type": "webhook", "url": "${URL}"}})",
                              R"({"attempts": 3, "backoff": "10ms"})", env_of({{"URL", rx.url("/hook")}}));
  al::Dispatcher d(set);
  d.submit(sample_alert({"ops"}));
  const auto done = d.finish();
  ASSERT_EQ(done.size(), 1u);
  ASSERT_EQ(done[0].attempts.size(), 2u);
  EXPECT_EQ(done[0].attempts[0].outcome, "failed");
  EXPECT_EQ(done[0].attempts[0].detail, "HTTP 500");
  EXPECT_EQ(done[0].attempts[1].outcome, "delivered");
  EXPECT_EQ(done[0].attempts[1].attempt, 2);
  const auto reqs = rx.requests("/hook");
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].header("content-type"), "application/json");
  EXPECT_EQ(reqs[1].body, reqs[0].body);
  EXPECT_EQ(
      python_json(dir, reqs[1].body),
      R"({"condition": "threshold", "created_unix_ns": 1764597600000000000, "label": "nightly <main>", )"
      R"("message": "[slow-build] nightly <main>: wall 2.50 s in run 42 > 2.00 s & rising", "metric": "wall", )"
      R"("rule": "slow-build", "run_id": 42, "severity": "critical", "source": "spyglass", "threshold": 2, )"
      R"("time": "2025-12-01T14:00:00Z", "value": 2.5})");
}

TEST(AlertDelivery, SlackIncomingWebhookPayload) {
  TempDir dir;
  spyglass_test::Receiver rx;
  rx.set_default({spyglass_test::Reply::respond, 200, {}, "ok", "text/plain"});
  const auto set = rules_with(R"({"slack": {"type": "slack", "url": "${SLACK_URL}"}})", "{}",
                              env_of({{"SLACK_URL", rx.url("/services/T0/B0/secret")}}));
  al::Dispatcher d(set);
  d.submit(sample_alert({"slack"}));
  const auto done = d.finish();
  ASSERT_EQ(done.at(0).attempts.size(), 1u);
  EXPECT_EQ(done[0].attempts[0].outcome, "delivered");
  const auto reqs = rx.requests("/services/T0/B0/secret");
  ASSERT_EQ(reqs.size(), 1u);
  const std::string msg = "[slow-build] nightly &lt;main&gt;: wall 2.50 s in run 42 &gt; 2.00 s &amp; rising";
  EXPECT_EQ(
      python_json(dir, reqs[0].body),
      R"({"blocks": [{"text": {"text": "critical: slow-build", "type": "plain_text"}, "type": "header"}, )"
      R"({"text": {"text": ")" +
          msg +
          R"(", "type": "mrkdwn"}, "type": "section"}, )"
          R"({"elements": [{"text": "label *nightly &lt;main&gt;* · run 42 · threshold · wall · )"
          R"(2025-12-01 14:00:00 UTC", "type": "mrkdwn"}], "type": "context"}], "text": ")" +
          msg + R"("})");
}

// A real SMTP server (aiosmtpd) with a login; the mail is read by Python's email module.
TEST(AlertDelivery, EmailOverSmtp) {
  TempDir dir;
  spyglass_test::Child server({kPython, kPeers, "smtp", dir.path(), "alerts", "s3cret-pw"}, dir.path());
  ASSERT_TRUE(spyglass_test::wait_until([&] { return std::filesystem::exists(dir / "port"); },
                                        spyglass_test::kWaitLimit));
  const std::string port = slurp(dir / "port");
  const auto set =
      rules_with(R"({"mail": {"type": "email", "url": "smtp://127.0.0.1:)" + port +
                     R"(", "from": "spyglass@example.org", "to": ["oncall@example.org", "lead@example.org"],
                                  "username": "alerts", "password": "${SMTP_PASSWORD}"}})",
                 "{}", env_of({{"SMTP_PASSWORD", "s3cret-pw"}}));
  al::Dispatcher d(set);
  d.submit(sample_alert({"mail"}));
  const auto done = d.finish();
  ::kill(server.pid(), SIGTERM);
  server.wait();
  ASSERT_EQ(done.at(0).attempts.size(), 1u);
  EXPECT_EQ(done[0].attempts[0].outcome, "delivered") << done[0].attempts[0].detail;
  EXPECT_EQ(
      slurp(dir / "1.json"),
      R"({"mail_from": "spyglass@example.org", "rcpt_tos": ["oncall@example.org", "lead@example.org"], )"
      R"("login": "alerts"})");
  EXPECT_EQ(
      peer({"mail", dir / "1.eml"}),
      R"({"body": "[slow-build] nightly <main>: wall 2.50 s in run 42 > 2.00 s & rising\n\nrule: slow-build\n)"
      R"(label: nightly <main>\nrun: 42\ncondition: threshold\nmetric: wall\nseverity: critical\n)"
      R"(time: 2025-12-01T14:00:00Z\n", "charset": "utf-8", "content_type": "text/plain", )"
      R"("date": "Mon, 01 Dec 2025 14:00:00 +0000", "from": "spyglass@example.org", )"
      R"("subject": "[spyglass] CRITICAL slow-build on nightly <main>", )"
      R"("to": "oncall@example.org, lead@example.org"})");
}

// A refused connection is retried and given up; a server that never answers is cut at the
// budget: finish() returns within it whatever the per-attempt timeout.
TEST(AlertDelivery, DownChannelsAreBoundedByTheBudget) {
  int refused_port = 0;
  {
    spyglass_test::Receiver closed;
    refused_port = closed.port();
  }  // closed: nothing listens there any more
  spyglass_test::Receiver silent;
  silent.set_default({spyglass_test::Reply::hang, 200, {}, "", "text/plain"});
  const double budget = 1.0;
  const auto set = rules_with(R"({"refused": {"type": "webhook", "url": "http://127.0.0.1:)" +
                                  std::to_string(refused_port) +
                                  R"(/x"}, "silent": {"type": "slack", "url": "${SILENT}"}})",
                              R"({"attempts": 3, "backoff": "10ms", "timeout": "60s", "budget": "1s"})",
                              env_of({{"SILENT", silent.url("/hook")}}));
  al::Dispatcher d(set);
  d.submit(sample_alert({"refused", "silent"}));
  d.submit(sample_alert({"silent"}));
  ASSERT_TRUE(silent.wait_for(1));  // the first attempt to the silent channel is in flight
  const auto t0 = std::chrono::steady_clock::now();
  const auto done = d.finish();
  const double took = seconds_since(t0);
  // The bound: the budget, plus libcurl's progress tick (about a second) and scheduling on
  // a loaded machine; without it, 3 attempts of 60 s.
  EXPECT_LT(took, budget + 5.0);
  ASSERT_EQ(done.size(), 2u);
  std::vector<std::string> first;
  for (const auto& a : done[0].attempts) first.push_back(a.channel + " " + a.outcome + " " + a.detail);
  std::sort(first.begin(), first.end());  // each channel has a thread of its own
  EXPECT_EQ(first,
            (std::vector<std::string>{
                "refused failed Couldn't connect to server", "refused failed Couldn't connect to server",
                "refused failed Couldn't connect to server", "silent abandoned delivery budget of 1 s spent",
                "silent failed cut at the end of the delivery budget"}));
  ASSERT_EQ(done[1].attempts.size(), 1u);
  EXPECT_EQ(done[1].attempts[0].outcome, "abandoned");
}

// The command: run --alerts delivers to a webhook and a silent channel, bounded; the
// history keeps channel names, never the URLs or the password; `alerts --json` is read
// by Python's json.
TEST(AlertsCommand, RunDeliversStoresAndListsWithoutSecrets) {
  TempDir dir;
  spyglass_test::Receiver rx;
  rx.set_default({spyglass_test::Reply::respond, 204, {}, "", "text/plain"});
  spyglass_test::Receiver silent;
  silent.set_default({spyglass_test::Reply::hang, 200, {}, "", "text/plain"});
  const std::string token = "tok-7f3a9c1e";
  const std::string password = "pw-5d2b8e4f";
  std::ofstream(dir / "rules.json") << R"({
  "channels": {
    "ops": {"type": "webhook", "url": "${OPS_URL}"},
    "slow-slack": {"type": "slack", "url": "${SLACK_URL}"},
    "mail": {"type": "email", "url": "smtp://127.0.0.1:1", "from": "a@example.org", "to": "b@example.org",
             "username": "u", "password": "${SMTP_PASSWORD}"}
  },
  "delivery": {"attempts": 2, "backoff": "10ms", "timeout": "30s", "budget": "1s"},
  "rules": [
    {"name": "failed", "condition": "run_failed", "channels": ["ops", "mail", "slow-slack"], "severity": "critical"},
    {"name": "quick", "metric": "wall", "condition": "threshold", "op": "<", "value": "1h", "channels": ["ops"]}
  ]
})";
  ::setenv("OPS_URL", (rx.url("/hook?token=") + token).c_str(), 1);
  ::setenv("SLACK_URL", (silent.url("/services/") + token).c_str(), 1);
  ::setenv("SMTP_PASSWORD", password.c_str(), 1);
  const std::string db = dir / "h.db";
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run({kSpyglass, "run", "--db", db, "--label", "job", "--alerts", dir / "rules.json", "--",
                      "sh", "-c", "exit 3"},
                     dir.path());
  const double took = seconds_since(t0);
  EXPECT_EQ(r.exit_code, 3) << r.err;  // the command's own status, whatever the channels did
  EXPECT_LT(took, 1.0 + 8.0);          // 2 attempts x 30 s without the budget
  EXPECT_NE(r.err.find("spyglass: alert critical: [failed] job: run 1 exited with 3"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("ops delivered (attempt 1)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("mail failed after 2 attempts: Couldn't connect to server"), std::string::npos)
      << r.err;
  EXPECT_EQ(rx.requests().size(), 2u);

  const auto list = run({kSpyglass, "alerts", "--db", db, "--json"}, dir.path());
  ASSERT_EQ(list.exit_code, 0) << list.err;
  const auto py = peer({"json", [&] {
                          std::ofstream(dir / "list.json") << list.out;
                          return dir / "list.json";
                        }()});
  // Checked field by field in Python: newest first, the quick rule's alert then the failure's.
  std::ofstream(dir / "check.py") << R"py(
import json, sys
a = json.load(open(sys.argv[1]))
assert [x["rule"] for x in a] == ["quick", "failed"] or [x["rule"] for x in a] == ["failed", "quick"], a
f = [x for x in a if x["rule"] == "failed"][0]
assert f["run_id"] == 1 and f["label"] == "job" and f["condition"] == "run_failed" and f["severity"] == "critical"
assert f["message"] == "[failed] job: run 1 exited with 3", f
out = {}
for d in f["deliveries"]:
    out.setdefault(d["channel"], []).append(d["outcome"])
assert out["ops"] == ["delivered"], out
assert out["mail"] == ["failed", "failed"], out
assert out["slow-slack"][-1] == "abandoned", out
print("ok")
)py";
  const auto checked = run({kPython, dir / "check.py", dir / "list.json"});
  EXPECT_EQ(checked.out, "ok\n") << checked.err << py;

  // Secrets: not in the database files, nor in anything spyglass printed.
  for (const std::string& f : {db, db + "-wal", db + "-shm"}) {
    const std::string bytes = slurp(f);
    EXPECT_EQ(bytes.find(token), std::string::npos) << f;
    EXPECT_EQ(bytes.find(password), std::string::npos) << f;
    EXPECT_EQ(bytes.find("/hook"), std::string::npos) << f;
  }
  EXPECT_EQ(r.err.find(token), std::string::npos);
  EXPECT_EQ(r.err.find(password), std::string::npos);
  EXPECT_EQ(r.out.find(token), std::string::npos);
  const auto text = run({kSpyglass, "alerts", "--db", db, "--label", "job"}, dir.path());
  EXPECT_EQ(text.out.find(token), std::string::npos);
  EXPECT_NE(text.out.find("ops delivered (attempt 1)"), std::string::npos) << text.out;
  EXPECT_EQ(run({kSpyglass, "alerts", "--db", db, "--since", "now-1h", "--json"}).out, list.out);
  EXPECT_EQ(run({kSpyglass, "alerts", "--db", db, "--since", "2099-01-01"}).out, "no alerts\n");
  EXPECT_EQ(run({kSpyglass, "alerts", "--db", db, "--label", "other"}).out, "no alerts\n");
  EXPECT_EQ(run({kSpyglass, "alerts", "--db", db, "--limit", "1", "--json"}).out.find("},{"),
            std::string::npos);
  ::unsetenv("OPS_URL");
  ::unsetenv("SLACK_URL");
  ::unsetenv("SMTP_PASSWORD");
}

// A CPU burst alerts while the run goes on: the webhook has it before spyglass exits
// (the workload idles 5 s after its burst), with no run id yet; the history then has it
// with the run's id.
TEST(AlertsCommand, LiveSpikeAlertsWhileTheRunGoesOn) {
  TempDir dir;
  spyglass_test::Receiver rx;
  rx.set_default({spyglass_test::Reply::respond, 200, {}, "", "text/plain"});
  std::ofstream(dir / "rules.json")
      << R"({"channels": {"ops": {"type": "webhook", "url": ")" + rx.url("/hook") +
             R"("}}, "rules": [{"name": "cpu-spike", "condition": "spike", "metric": "cpu",
                                           "channels": ["ops"]}]})";
  const std::string db = dir / "h.db";
  spyglass_test::Child child(
      {kSpyglass, "run", "--db", db, "--label", "burst", "--interval", "50ms", "--alerts", dir / "rules.json",
       "--", spyglass_test::kWorkload, "burst", "2.5", "4", "1", "5"},
      dir.path());
  ASSERT_TRUE(rx.wait_for(1, std::chrono::seconds(60)));
  int status = 0;
  EXPECT_EQ(::waitpid(child.pid(), &status, WNOHANG), 0) << "the alert came only after the run";
  const auto r = child.wait();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto body = python_json(dir, rx.requests("/hook").at(0).body);
  EXPECT_NE(body.find(R"("condition": "spike", )"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("run_id": null, )"), std::string::npos) << body;
  auto h = mon::History::open(db, {.create = false, .read_only = true});
  const auto stored = h.alerts({});
  ASSERT_EQ(stored.size(), 1u);  // one episode, two detectors: deduplicated
  EXPECT_EQ(stored[0].run_id, 1);
  EXPECT_EQ(stored[0].kind, "spike");
  ASSERT_EQ(stored[0].deliveries.size(), 1u);
  EXPECT_EQ(stored[0].deliveries[0].outcome, "delivered");
}

// A rules file with a channel, so that `run --alerts` starts a delivery thread; the rule
// never fires on a successful command.
std::string rules_with_a_channel(const TempDir& dir, const spyglass_test::Receiver& rx) {
  std::ofstream(dir / "rules.json") << R"({"channels": {"ops": {"type": "webhook", "url": ")" +
                                           rx.url("/hook") +
                                           R"("}}, "rules": [{"name": "failed", "condition": "run_failed",
                                                             "channels": ["ops"]}]})";
  return dir / "rules.json";
}

// The delivery thread must not take the command's SIGCHLD: the exit of `true` is seen at
// once, not at the next sample 5 s later. Two seconds leave room for a loaded machine and
// cannot be met by luck when the exit waits for the sampling tick.
TEST(AlertsCommand, ChannelThreadsDoNotDelayTheEndOfTheRun) {
  TempDir dir;
  spyglass_test::Receiver rx;
  const std::string db = dir / "h.db";
  const auto r = run({kSpyglass, "run", "--db", db, "--label", "quick", "--interval", "5s", "--alerts",
                      rules_with_a_channel(dir, rx), "--", "true"},
                     dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto h = mon::History::open(db, {.create = false, .read_only = true});
  const auto runs = h.runs({});
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_LT(static_cast<double>(runs[0].duration_ns) / 1e9, 2.0);
  EXPECT_TRUE(rx.requests().empty());
}

// SIGTERM to spyglass with a channel: it reaches the runner (not a delivery thread, where
// it would kill spyglass and orphan the command), which ends the tree and records the run.
TEST(AlertsCommand, SigtermWithAChannelEndsTheTreeAndRecordsTheRun) {
  TempDir dir;
  spyglass_test::Receiver rx;
  const std::string db = dir / "h.db";
  spyglass_test::Child child({kSpyglass, "run", "--db", db, "--label", "long", "--alerts",
                              rules_with_a_channel(dir, rx), "--", "sleep", "37"},
                             dir.path());
  ASSERT_GT(child.pid(), 0);
  pid_t sleeper = 0;
  ASSERT_TRUE(spyglass_test::wait_until(
      [&] {
        const auto kids = spyglass_test::children_of(child.pid());
        if (kids.empty()) return false;
        sleeper = kids.front();
        // Past exec: the child is sleep itself, not spyglass' fork before it.
        return spyglass_test::slurp("/proc/" + std::to_string(sleeper) + "/comm") == "sleep\n";
      },
      spyglass_test::kWaitLimit));
  ::kill(child.pid(), SIGTERM);
  const auto r = child.wait();
  const bool left = spyglass_test::alive(sleeper);
  if (left) ::kill(sleeper, SIGKILL);
  EXPECT_FALSE(left) << "the command outlived spyglass";
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
  auto h = mon::History::open(db, {.create = false, .read_only = true});
  const auto runs = h.runs({});
  ASSERT_EQ(runs.size(), 1u) << r.err;
  EXPECT_EQ(runs[0].kill_reason, "SIGTERM");
  EXPECT_EQ(runs[0].signal, SIGTERM);
}

TEST(AlertsCommand, CheckValidatesAndRunRefusesABadFile) {
  TempDir dir;
  std::ofstream(dir / "bad.json") << "{\"rules\": [\n  {\"name\": \"x\", \"condition\": \"treshold\"}\n]}";
  std::ofstream(dir / "good.json") << R"({"rules": [{"name": "x", "condition": "run_failed"}]})";
  auto r = run({kSpyglass, "alerts", "check", dir / "bad.json"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "spyglass: " + dir / "bad.json" +
                ":2: rules[0].condition: unknown condition \"treshold\" (threshold, anomaly, change_point, "
                "regression, forecast_breach, run_failed, killed_by_limit, spike, leak)\n");
  r = run({kSpyglass, "alerts", "check", dir / "good.json"}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, dir / "good.json" + ": 1 rules, 0 channels: valid\n");
  r = run({kSpyglass, "alerts", "check", dir / "missing.json"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "spyglass: " + dir / "missing.json" + ": cannot read: No such file or directory\n");
  // A bad file stops `run` before the command starts: nothing ran, nothing recorded.
  r = run({kSpyglass, "run", "--db", dir / "h.db", "--alerts", dir / "bad.json", "--", "touch", dir / "ran"},
          dir.path());
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_FALSE(std::filesystem::exists(dir / "ran"));
  EXPECT_FALSE(std::filesystem::exists(dir / "h.db"));
}

}  // namespace
