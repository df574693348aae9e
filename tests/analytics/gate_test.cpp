// `spyglass gate`: exit codes, and the reports read by their real consumers: xmllint and
// Python's ElementTree for JUnit XML, prove for TAP, Python for the Markdown table.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../monitor/support.hpp"
#include "reference.hpp"
#include "spyglass/monitor/history.hpp"

using spyglass_test::kSpyglass;
using spyglass_test::noisy;
using spyglass_test::run;
using spyglass_test::TempDir;

namespace {

const std::string kPython = PYTHON3;
const std::string kNode = NODE;
const std::string kTapCheck = TAP_CHECK_MJS;
constexpr int kGateFailed = 3;
constexpr int kRunGateFailed = 123;  // run --gate, when the command succeeded

// Records one run per wall time (seconds) under `label`, an hour apart, 600 MiB peak RSS.
void record(const std::string& db, const std::string& label, const std::vector<double>& walls,
            int failed_index = -1) {
  auto h = spyglass::monitor::History::open(db);
  for (std::size_t i = 0; i < walls.size(); ++i) {
    spyglass::monitor::RunRecord r;
    r.label = label;
    r.command = "job";
    r.start_unix_ns = (1772323200LL + 3600LL * static_cast<long long>(i)) * 1000000000LL;
    r.duration_ns = static_cast<std::int64_t>(walls[i] * 1e9);
    r.end_unix_ns = r.start_unix_ns + r.duration_ns;
    r.user_cpu_ns = static_cast<std::uint64_t>(0.9 * static_cast<double>(r.duration_ns));
    r.max_rss_bytes = 600ull << 20;
    r.exit_code = static_cast<int>(i) == failed_index ? 1 : 0;
    h.insert(r, {}, 0);
  }
}

// 1 s with 2% noise; from run `shift_at` on, `factor` times slower.
std::vector<double> walls(std::size_t n, std::size_t shift_at, double factor, std::uint64_t seed = 77) {
  auto v = noisy(n, 0.0, 0.02, seed);
  for (std::size_t i = 0; i < n; ++i) v[i] += i < shift_at ? 1.0 : factor;
  return v;
}

spyglass_test::Result gate(const TempDir& dir, const std::string& db, const std::string& label,
                           const std::vector<std::string>& rules,
                           const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {kSpyglass, "gate", "--label", label, "--db", db};
  for (const auto& r : rules) {
    argv.push_back("--rule");
    argv.push_back(r);
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run(argv, dir.path());
}

// Runs Python `code` with `args` as sys.argv[1:]; returns its stdout.
std::string python(const TempDir& dir, const std::string& code, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kPython, "-c", code};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = run(argv, dir.path());
  return r.out + r.err;
}

// The shape JUnit readers (Jenkins, GitLab, GitHub reporters) take, and the counts.
const char* kJunitShape = R"py(
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
want_tests, want_fail, want_skip = (int(x) for x in sys.argv[2:5])
assert root.tag == "testsuites", root.tag
suites = root.findall("testsuite")
assert len(suites) == 1, suites
s = suites[0]
for k in ("name", "tests", "failures", "errors", "skipped", "time", "timestamp"):
    assert k in s.attrib, k
import datetime
datetime.datetime.strptime(s.get("timestamp"), "%Y-%m-%dT%H:%M:%S")
import re
time = re.compile(r"^[0-9]+\.[0-9]{3}$")
assert time.match(s.get("time")) and time.match(root.get("time")), (s.get("time"), root.get("time"))
cases = s.findall("testcase")
for c in cases:
    for k in ("name", "classname", "time"):
        assert k in c.attrib, (k, c.attrib)
    assert time.match(c.get("time")), c.get("time")
fails = [c for c in cases if c.find("failure") is not None]
skips = [c for c in cases if c.find("skipped") is not None]
got = (len(cases), len(fails), len(skips))
assert got == (want_tests, want_fail, want_skip), got
assert (int(s.get("tests")), int(s.get("failures")), int(s.get("skipped")), int(s.get("errors"))) == got + (0,), s.attrib
assert (int(root.get("tests")), int(root.get("failures")), int(root.get("skipped"))) == got, root.attrib
for c in fails:
    print(c.get("name"), "|", c.find("failure").get("message"))
print("ok")
)py";

// What tap-parser, the reference TAP 14 parser, reads in the TAP file `tap` (as JSON, see
// tap_check.mjs), checked field by field by Python `code` (the JSON is sys.argv[1]).
std::string tap14(const TempDir& dir, const std::string& tap, const std::string& code) {
  const auto parsed = run({kNode, kTapCheck, tap}, dir.path());
  EXPECT_EQ(parsed.exit_code, 0) << parsed.err;
  const std::string json = dir / "tap.json";
  std::ofstream(json) << parsed.out;
  return python(dir, "import json, sys\nr = json.load(open(sys.argv[1]))\n" + code, {json});
}

}  // namespace

TEST(Gate, ThresholdsExitCodesAndReports) {
  TempDir dir;
  const std::string db = dir / "h.db";
  record(db, "nightly", {1.2, 1.3, 1.25});
  const std::string junit = dir / "gate.xml", tap = dir / "gate.tap", md = dir / "summary.md";
  // The same file appended to, as GitHub's step summary is.
  std::ofstream(md) << "# earlier step\n";

  const auto pass = gate(dir, db, "nightly", {"wall < 2s", "max_rss <= 700MiB", "cpu_user>=1ms"});
  EXPECT_EQ(pass.exit_code, 0) << pass.out << pass.err;
  EXPECT_NE(pass.out.find("gate passed for label nightly (run 3): 3 passed, 0 failed"), std::string::npos)
      << pass.out;

  const auto fail = gate(dir, db, "nightly", {"wall < 2s", "max_rss < 512MiB", "wall > 1200ms"},
                         {"--junit", junit, "--tap", tap, "--markdown", md});
  EXPECT_EQ(fail.exit_code, kGateFailed) << fail.out << fail.err;
  EXPECT_NE(fail.out.find("FAIL max_rss < 512MiB: max_rss 600.0 MiB in run 3, threshold < 512.0 MiB"),
            std::string::npos)
      << fail.out;

  const auto lint = run({"xmllint", "--noout", junit}, dir.path());
  EXPECT_EQ(lint.exit_code, 0) << lint.err;
  EXPECT_EQ(python(dir, kJunitShape, {junit, "3", "1", "0"}),
            "max_rss < 512MiB | max_rss 600.0 MiB in run 3, threshold < 512.0 MiB\nok\n");

  // The file as written, read by tap-parser as TAP 14: plan, counts, and the failure's
  // YAML block parsed into its fields.
  EXPECT_EQ(tap14(dir, tap, R"py(
assert r["version"] == 14 and r["plan"] == {"start": 1, "end": 3}, r
assert (r["count"], r["pass"], r["fail"], r["skip"]) == (3, 2, 1, 0), r
assert r["errors"] == [] and r["extra"] == [] and not r["bailout"], r
f = r["failures"]
assert [(x["id"], x["name"]) for x in f] == [(2, "max_rss < 512MiB")], f
assert f[0]["diag"] == {"message": "max_rss 600.0 MiB in run 3, threshold < 512.0 MiB", "measured": "600.0 MiB",
                        "threshold": "< 512.0 MiB", "label": "nightly", "run_id": 3}, f[0]["diag"]
print("ok")
)py"),
            "ok\n");

  // Debian 12's prove (Test::Harness 3.44) knows TAP up to version 13 and reports a
  // version 14 header as a parse error and nothing else; the rest (plan, test lines, YAML
  // diagnostics, directives) is common to both versions and read by prove as TAP 13.
  const std::string text = spyglass_test::slurp(tap);
  ASSERT_EQ(text.rfind("TAP version 14\n1..3\n", 0), 0u) << text;
  const auto raw = run({"prove", "-e", "cat", tap}, dir.path());
  EXPECT_NE(raw.out.find("Failed test:  2"), std::string::npos) << raw.out;
  const std::string as13 = dir / "gate13.tap";
  std::ofstream(as13) << "TAP version 13\n" << text.substr(text.find('\n') + 1);
  const auto p = run({"prove", "-v", "-e", "cat", as13}, dir.path());
  EXPECT_EQ(p.exit_code, 1) << p.out << p.err;
  EXPECT_NE(p.out.find("Tests: 3 Failed: 1)"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("Failed test:  2\n"), std::string::npos) << p.out;
  EXPECT_EQ(p.out.find("Parse errors"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("  measured: \"600.0 MiB\""), std::string::npos) << p.out;

  EXPECT_EQ(python(dir, R"py(
import sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0] == "# earlier step", lines[0]
assert lines[1].startswith("### spyglass gate: nightly: FAILED (1 of 3 failed)"), lines[1]
rows = [l for l in lines if l.startswith("| ")]
assert rows[0].split("|")[1:-1] == [" ", " rule ", " measured ", " threshold "], rows[0]
assert len(rows) == 4 and all(len(r.split("|")) == 6 for r in rows), rows
assert ":x:" in rows[2] and "`max_rss < 512MiB`" in rows[2] and "600.0 MiB" in rows[2], rows[2]
print("ok")
)py",
                   {md}),
            "ok\n");
}

TEST(Gate, RegressionAgainstTheBaseline) {
  TempDir dir;
  const std::string db = dir / "h.db";
  record(db, "slower", walls(40, 35, 1.25), 10);  // the latest 5 runs 25% slower, run 11 failed
  record(db, "steady", walls(40, 40, 1.0));
  record(db, "young", walls(6, 6, 1.0));
  const std::string junit = dir / "gate.xml", tap = dir / "gate.tap";

  const auto slow = gate(dir, db, "slower", {"no-regression:wall,max_rss"}, {"--junit", junit});
  EXPECT_EQ(slow.exit_code, kGateFailed) << slow.out << slow.err;
  EXPECT_NE(slow.out.find("FAIL no-regression wall: wall: latest 5 runs vs 20 baseline runs"),
            std::string::npos)
      << slow.out;
  EXPECT_NE(slow.out.find("PASS no-regression max_rss"), std::string::npos) << slow.out;
  // The verdict, recomputed with SciPy from the history file.
  EXPECT_EQ(python(dir, R"py(
import sqlite3, sys
from scipy import stats
import numpy as np
rows = [r[0] / 1e9 for r in sqlite3.connect(sys.argv[1]).execute(
    "SELECT duration_ns FROM runs WHERE label = 'slower' AND exit_code = 0 ORDER BY start_unix_ns")]
cur, base = rows[-5:], rows[-25:-5]
p = stats.mannwhitneyu(cur, base, alternative="two-sided").pvalue
change = np.median(cur) / np.median(base) - 1
print(p < 0.01 and change >= 0.05)
)py",
                   {db}),
            "True\n");
  EXPECT_EQ(python(dir, kJunitShape, {junit, "2", "1", "0"}).substr(0, 20), "no-regression wall |");

  const auto steady = gate(dir, db, "steady", {"no-regression"});
  EXPECT_EQ(steady.exit_code, 0) << steady.out << steady.err;

  // Too few runs: skipped, not failed, in every report.
  const auto young =
      gate(dir, db, "young", {"no-regression:wall", "wall < 2s"}, {"--junit", junit, "--tap", tap});
  EXPECT_EQ(young.exit_code, 0) << young.out << young.err;
  EXPECT_NE(young.out.find("SKIP no-regression wall: needs the latest 5"), std::string::npos) << young.out;
  EXPECT_EQ(python(dir, kJunitShape, {junit, "2", "0", "1"}), "ok\n");
  EXPECT_EQ(tap14(dir, tap, R"py(
assert r["version"] == 14 and r["ok"] and r["errors"] == [] and r["extra"] == [], r
assert (r["count"], r["pass"], r["fail"], r["skip"]) == (2, 2, 0, 1), r
s = r["skips"]
assert [x["name"] for x in s] == ["no-regression wall"] and s[0]["reason"].startswith("needs the latest 5"), s
print("ok")
)py"),
            "ok\n");
  std::string text = spyglass_test::slurp(tap);
  text.replace(0, text.find('\n'), "TAP version 13");
  std::ofstream(tap) << text;
  const auto p = run({"prove", "-v", "-e", "cat", tap}, dir.path());
  EXPECT_EQ(p.exit_code, 0) << p.out << p.err;
  EXPECT_NE(p.out.find("ok 1 - no-regression wall # SKIP needs the latest 5"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("Result: PASS"), std::string::npos) << p.out;
}

TEST(Gate, ChangePointAmongTheRecentRuns) {
  TempDir dir;
  const std::string db = dir / "h.db";
  record(db, "recent", walls(40, 32, 1.3));
  record(db, "old", walls(40, 15, 1.3));
  const auto recent = gate(dir, db, "recent", {"no-change-point:wall"});
  EXPECT_EQ(recent.exit_code, kGateFailed) << recent.out << recent.err;
  EXPECT_NE(recent.out.find("FAIL no-change-point wall: wall: rose +"), std::string::npos) << recent.out;
  const auto old = gate(dir, db, "old", {"no-change-point:wall"});
  EXPECT_EQ(old.exit_code, 0) << old.out << old.err;
  EXPECT_NE(old.out.find("PASS no-change-point wall: 1 change point(s) in 40 runs, none recent"),
            std::string::npos)
      << old.out;
  // A wider window reaches it.
  EXPECT_EQ(gate(dir, db, "old", {"no-change-point:wall"}, {"--recent", "30"}).exit_code, kGateFailed);
}

TEST(Gate, BadInputIsAClearError) {
  TempDir dir;
  const std::string db = dir / "h.db";
  record(db, "l", {1, 1, 1});
  for (const auto& [rule, says] : std::vector<std::pair<std::string, std::string>>{
           {"wall < 2MiB", "rule 'wall < 2MiB': '2MiB' is not a duration"},
           {"max_rss < 2s", "rule 'max_rss < 2s': '2s' is not a size"},
           {"sp eed < 2s", "rule 'sp eed < 2s': no metric 'sp eed' (metrics: wall, cpu_user"},
           {"wall = 2s", "rule 'wall = 2s': expected METRIC < VALUE"},
           {"no-regression:", "rule 'no-regression:': no metric after ':'"},
           {"no-change-point:wall,r-ss", "rule 'no-change-point:wall,r-ss': no metric 'r-ss'"},
           {"wall < -1s", "'-1s' is not a duration"}}) {
    const auto r = gate(dir, db, "l", {"wall < 2s", rule});
    EXPECT_EQ(r.exit_code, 125) << rule;
    EXPECT_NE(r.err.find(says), std::string::npos) << rule << ": " << r.err;
    EXPECT_EQ(r.out, "") << rule;
  }
  // Any name can be a custom metric's: one that no run of the label recorded is an error.
  for (const auto& [rule, says] : std::vector<std::pair<std::string, std::string>>{
           {"speed < 2s",
            "rule 'speed < 2s': no metric 'speed' in the runs of label 'l' (metrics: wall, cpu_user"},
           {"no-change-point:wall,rss", "rule 'no-change-point:wall,rss': no metric 'rss' in the runs"}}) {
    const auto r = gate(dir, db, "l", {"wall < 2s", rule});
    EXPECT_EQ(r.exit_code, 1) << rule;
    EXPECT_NE(r.err.find(says), std::string::npos) << rule << ": " << r.err;
    EXPECT_EQ(r.out, "") << rule;
  }
  EXPECT_EQ(gate(dir, db, "l", {}).exit_code, 125);
  const auto none = gate(dir, db, "absent", {"wall < 2s"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no runs labelled 'absent'"), std::string::npos) << none.err;
  const auto missing_db = gate(dir, dir / "nothere.db", "l", {"wall < 2s"});
  EXPECT_EQ(missing_db.exit_code, 1) << missing_db.err;
  // A report that cannot be written fails the gate's run, and the others are still written.
  const std::string tap = dir / "ok.tap";
  const auto unwritable =
      gate(dir, db, "l", {"wall < 2s"}, {"--junit", dir / "no/such/dir.xml", "--tap", tap});
  EXPECT_EQ(unwritable.exit_code, 1);
  EXPECT_NE(unwritable.err.find("cannot write " + (dir / "no/such/dir.xml")), std::string::npos)
      << unwritable.err;
  EXPECT_EQ(spyglass_test::slurp(tap).rfind("TAP version 14\n1..1\nok 1 - wall < 2s\n", 0), 0u);
  const auto help = run({kSpyglass, "gate", "--help"}, dir.path());
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("3 when a rule fails"), std::string::npos) << help.out;
}

// A tree measured by a cgroup is judged on the kernel's peak, not on the sampled RSS sum,
// which counts copy-on-write pages once per process (822 MiB for a 220 MiB tree).
TEST(Gate, TreePeakIsTheCgroupsWhenOneMeasuredIt) {
  TempDir dir;
  const std::string db = dir / "h.db";
  auto insert = [&](const std::string& label, const std::string& source) {
    auto h = spyglass::monitor::History::open(db);
    for (int i = 0; i < 3; ++i) {
      spyglass::monitor::RunRecord r;
      r.label = label;
      r.command = "job";
      r.start_unix_ns = (1772323200LL + 3600LL * i) * 1000000000LL;
      r.duration_ns = 1000000000;
      r.end_unix_ns = r.start_unix_ns + r.duration_ns;
      r.peak_tree_rss_bytes = 822ull << 20;
      r.tree_source = source;
      r.tree_peak_memory_bytes = source == "sampled" ? r.peak_tree_rss_bytes : 220ull << 20;
      h.insert(r, {}, 0);
    }
  };
  insert("cg", "cgroup-v2");
  insert("sampled", "sampled");
  const auto exact = gate(dir, db, "cg", {"tree_peak_rss < 500M"});
  EXPECT_EQ(exact.exit_code, 0) << exact.out << exact.err;
  EXPECT_NE(exact.out.find("220.0 MiB"), std::string::npos) << exact.out;
  const auto sampled = gate(dir, db, "sampled", {"tree_peak_rss < 500M"});
  EXPECT_EQ(sampled.exit_code, kGateFailed) << sampled.out << sampled.err;
  EXPECT_NE(sampled.out.find("822.0 MiB"), std::string::npos) << sampled.out;
}

TEST(Gate, PinnedBaseline) {
  TempDir dir;
  const std::string db = dir / "h.db";
  {
    // Made by the previous schema: pinning migrates it, and a read-only reader of it
    // before that finds no pin.
    auto h = spyglass::monitor::History::open(db, {.schema_version = 3});
  }
  // 1 s for 20 runs, then 25% slower for good: without a pin the baseline has moved on.
  record(db, "moved", walls(40, 20, 1.25), 5);  // run 6 failed
  const auto before = gate(dir, db, "moved", {"no-regression:wall"});
  EXPECT_EQ(before.exit_code, 0) << before.out << before.err;
  EXPECT_EQ(before.out.find("pinned"), std::string::npos) << before.out;

  EXPECT_EQ(run({kSpyglass, "baseline", "pin", "6", "--db", db}, dir.path()).exit_code, 1);
  EXPECT_EQ(run({kSpyglass, "baseline", "pin", "99", "--db", db}, dir.path()).exit_code, 1);
  const auto pin = run({kSpyglass, "baseline", "pin", "12", "--db", db}, dir.path());
  ASSERT_EQ(pin.exit_code, 0) << pin.err;
  EXPECT_EQ(pin.out, "run 12 is the baseline of label moved\n");

  const auto after = gate(dir, db, "moved", {"no-regression:wall"});
  EXPECT_EQ(after.exit_code, kGateFailed) << after.out << after.err;
  EXPECT_NE(after.out.find("latest 5 runs vs 11 baseline runs: median "), std::string::npos) << after.out;
  EXPECT_NE(after.out.find(", baseline up to pinned run 12; threshold"), std::string::npos) << after.out;
  const auto an =
      run({kSpyglass, "analyze", "--label", "moved", "--metric", "wall", "--db", db, "--json"}, dir.path());
  ASSERT_EQ(an.exit_code, 0) << an.err;
  const auto show = run({kSpyglass, "baseline", "show", "--json", "--db", db}, dir.path());
  ASSERT_EQ(show.exit_code, 0) << show.err;
  std::ofstream(dir / "an.json") << an.out;
  std::ofstream(dir / "show.json") << show.out;
  // The baseline ends with the pinned run: the successful runs up to it, checked with SciPy.
  EXPECT_EQ(python(dir, R"py(
import json, sqlite3, sys
from scipy import stats
con = sqlite3.connect(sys.argv[1])
rows = con.execute("SELECT id, duration_ns FROM runs WHERE label = 'moved' AND exit_code = 0 "
                   "ORDER BY start_unix_ns").fetchall()
base = [d / 1e9 for i, d in rows if i <= 12]
cur = [d / 1e9 for i, d in rows[-5:]]
g = json.load(open(sys.argv[2]))["metrics"]["wall"]["regression"]
mw = stats.mannwhitneyu(cur, base, alternative="two-sided")
assert g["pinned_run"] == 12 and g["baseline_runs"] == len(base) == 11, g
assert abs(g["mann_whitney_p"] - mw.pvalue) <= 1e-9 * mw.pvalue and g["regressed"], (g, mw)
pins = json.load(open(sys.argv[3]))
assert [(p["label"], p["run_id"]) for p in pins] == [("moved", 12)], pins
assert con.execute("SELECT run_id FROM baselines WHERE label = 'moved'").fetchall() == [(12,)]
print("ok")
)py",
                   {db, dir / "an.json", dir / "show.json"}),
            "ok\n");

  // Retention keeps the pinned run.
  {
    auto h = spyglass::monitor::History::open(db);
    spyglass::monitor::RetentionPolicy keep;
    keep.keep_last_per_label = 10;
    h.apply_retention(keep);
    EXPECT_TRUE(h.run(12).has_value());
    EXPECT_FALSE(h.run(13).has_value());
  }
  // Only the pinned run is left before the latest: too few for a baseline, so skipped.
  const auto thin = gate(dir, db, "moved", {"no-regression:wall"});
  EXPECT_EQ(thin.exit_code, 0) << thin.out << thin.err;
  EXPECT_NE(thin.out.find("SKIP no-regression wall"), std::string::npos) << thin.out;
  EXPECT_EQ(run({kSpyglass, "baseline", "show", "--label", "moved", "--db", db}, dir.path())
                .out.rfind("moved: run 12, pinned ", 0),
            0u);

  const auto unpin = run({kSpyglass, "baseline", "unpin", "--label", "moved", "--db", db}, dir.path());
  EXPECT_EQ(unpin.exit_code, 0) << unpin.err;
  const auto again = run({kSpyglass, "baseline", "unpin", "--label", "moved", "--db", db}, dir.path());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("label 'moved' has no pinned baseline"), std::string::npos) << again.err;
  EXPECT_EQ(run({kSpyglass, "baseline", "show", "--db", db}, dir.path()).out, "no pinned baseline\n");
  EXPECT_EQ(run({kSpyglass, "baseline", "drop", "--db", db}, dir.path()).exit_code, 125);
}

// A latest run that was killed or failed is quicker and smaller than a whole one: the
// gate fails on it, and its threshold rules are skipped rather than passed.
TEST(Gate, FailedOrKilledLatestRunFailsTheGate) {
  TempDir dir;
  const std::string db = dir / "h.db", junit = dir / "gate.xml";
  auto run_labelled = [&](const std::vector<std::string>& opts, const std::vector<std::string>& cmd) {
    std::vector<std::string> argv = {kSpyglass, "run", "--no-pty", "--quiet", "--db", db, "--label", "g"};
    argv.insert(argv.end(), opts.begin(), opts.end());
    argv.push_back("--");
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return run(argv, dir.path());
  };
  ASSERT_EQ(run_labelled({"--timeout", "100ms"}, {"sleep", "5"}).exit_code, 124);
  const auto killed = gate(dir, db, "g", {"wall < 1h", "no-regression:wall"}, {"--junit", junit});
  EXPECT_EQ(killed.exit_code, kGateFailed) << killed.out << killed.err;
  EXPECT_NE(killed.out.find("FAIL latest run succeeded: run 1 killed (timeout)\n"), std::string::npos)
      << killed.out;
  EXPECT_NE(killed.out.find("SKIP wall < 1h: run 1 did not succeed"), std::string::npos) << killed.out;
  EXPECT_EQ(killed.out.find("PASS wall"), std::string::npos) << killed.out;
  EXPECT_EQ(run({"xmllint", "--noout", junit}, dir.path()).exit_code, 0);
  EXPECT_EQ(python(dir, kJunitShape, {junit, "3", "1", "2"}),
            "latest run succeeded | run 1 killed (timeout)\nok\n");

  ASSERT_EQ(run_labelled({}, {"sh", "-c", "exit 3"}).exit_code, 3);
  const auto failed = gate(dir, db, "g", {"wall < 1h"});
  EXPECT_EQ(failed.exit_code, kGateFailed) << failed.out << failed.err;
  EXPECT_NE(failed.out.find("FAIL latest run succeeded: run 2 exited with 3\n"), std::string::npos)
      << failed.out;

  // A successful run after them: the gate judges it alone.
  ASSERT_EQ(run_labelled({}, {"true"}).exit_code, 0);
  const auto ok = gate(dir, db, "g", {"wall < 1h"});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_EQ(ok.out.find("latest run"), std::string::npos) << ok.out;
}

TEST(Gate, RunChecksTheRulesAfterRecording) {
  TempDir dir;
  const std::string db = dir / "h.db", junit = dir / "run.xml";
  auto run_gated = [&](const std::vector<std::string>& opts, const std::vector<std::string>& cmd) {
    std::vector<std::string> argv = {kSpyglass, "run", "--no-pty", "--db", db, "--label", "job"};
    argv.insert(argv.end(), opts.begin(), opts.end());
    argv.push_back("--");
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return run(argv, dir.path());
  };
  const auto pass = run_gated({"--gate", "wall < 1h"}, {"true"});
  EXPECT_EQ(pass.exit_code, 0) << pass.err;
  EXPECT_NE(pass.err.find("PASS wall < 1h"), std::string::npos) << pass.err;
  // Any process's peak RSS is above 1 KiB.
  const auto fail =
      run_gated({"--gate", "wall < 1h", "--gate", "max_rss < 1K", "--gate-junit", junit}, {"true"});
  EXPECT_EQ(fail.exit_code, kRunGateFailed) << fail.err;
  EXPECT_NE(fail.err.find("FAIL max_rss < 1K: max_rss "), std::string::npos) << fail.err;
  EXPECT_EQ(run({"xmllint", "--noout", junit}, dir.path()).exit_code, 0);
  EXPECT_EQ(python(dir, kJunitShape, {junit, "2", "1", "0"}).substr(0, 19), "max_rss < 1K | max_");
  EXPECT_EQ(run_gated({"--gate", "max_rss < 1K", "--gate-exit-code", "42"}, {"true"}).exit_code, 42);
  // The command's own failure keeps its status, apart from a failed rule's, and every
  // report is written with the failed run as a failing test case.
  const std::string tap = dir / "run.tap", md = dir / "run.md";
  std::filesystem::remove(junit);
  const auto own =
      run_gated({"--gate", "wall < 1h", "--gate-junit", junit, "--gate-tap", tap, "--gate-markdown", md},
                {"sh", "-c", "exit 3"});
  EXPECT_EQ(own.exit_code, 3) << own.err;
  EXPECT_NE(own.err.find("FAIL latest run succeeded: run 4 exited with 3"), std::string::npos) << own.err;
  EXPECT_EQ(run({"xmllint", "--noout", junit}, dir.path()).exit_code, 0);
  EXPECT_EQ(python(dir, kJunitShape, {junit, "2", "1", "1"}),
            "latest run succeeded | run 4 exited with 3\nok\n");
  EXPECT_NE(spyglass_test::slurp(tap).find("not ok 1 - latest run succeeded\n"), std::string::npos);
  EXPECT_NE(spyglass_test::slurp(md).find("FAILED (1 of 2 failed)"), std::string::npos);
  EXPECT_EQ(run_gated({"--gate", "max_rss < 1K"}, {"sh", "-c", "exit 4"}).exit_code, 4);
  // A bad rule stops before the command runs: nothing recorded.
  const auto bad = run_gated({"--gate", "wall < soon"}, {"sh", "-c", "echo ran"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_EQ(bad.out, "");
  EXPECT_NE(bad.err.find("--gate: rule 'wall < soon': 'soon' is not a duration"), std::string::npos)
      << bad.err;
  EXPECT_EQ(run_gated({"--gate", "wall < 1h", "--no-history"}, {"true"}).exit_code, 125);
  for (const auto& [opts, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--gate", "wall < 1h", "--gate-exit-code", "0"}, "--gate-exit-code: not a valid number: '0'"},
           {{"--gate", "wall < 1h", "--gate-exit-code", "256"}, "--gate-exit-code: 1 to 255, not '256'"},
           {{"--gate-junit", junit}, "--gate-junit, --gate-tap and --gate-markdown need --gate"}}) {
    const auto r = run_gated(opts, {"true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
  }
  EXPECT_EQ(run({"sqlite3", db, "SELECT count(*) FROM runs"}, dir.path()).out, "5\n");
}

// Custom metrics the runs recorded: thresholds in their own units, a run lacking one, and
// no-regression over every metric, built in or custom.
TEST(Gate, CustomMetrics) {
  TempDir dir;
  const std::string db = dir / "h.db";
  {
    auto h = spyglass::monitor::History::open(db);
    for (int i = 0; i < 13; ++i) {
      spyglass::monitor::RunRecord r;
      r.label = "bench";
      r.command = "job";
      r.start_unix_ns = (1772323200LL + 3600LL * i) * 1000000000LL;
      r.duration_ns = 1000000000;
      r.end_unix_ns = r.start_unix_ns + r.duration_ns;
      // 8 runs near 1000 items/s, then the latest 5 near 1300; latency flat at 250 ms.
      r.metrics = {{"items_per_s", (i < 8 ? 1000.0 : 1300.0) + i * 0.5, ""}, {"lat", 0.25, "s"}};
      if (i == 0) r.metrics.push_back({"warmup", 3, "s"});  // only the first run recorded it
      h.insert(r, {}, 0);
    }
  }
  const auto pass = gate(dir, db, "bench", {"items_per_s > 1000", "lat <= 250ms", "lat < 1"});
  EXPECT_EQ(pass.exit_code, 0) << pass.out << pass.err;
  EXPECT_NE(pass.out.find("PASS items_per_s > 1000: 1306\n"), std::string::npos) << pass.out;
  EXPECT_NE(pass.out.find("PASS lat <= 250ms: 250 ms\n"), std::string::npos) << pass.out;

  const auto fail = gate(dir, db, "bench", {"items_per_s > 2000", "lat < 200ms", "warmup >= 1"});
  EXPECT_EQ(fail.exit_code, kGateFailed) << fail.out << fail.err;
  EXPECT_NE(fail.out.find("FAIL items_per_s > 2000: items_per_s 1306 in run 13, threshold > 2000"),
            std::string::npos)
      << fail.out;
  EXPECT_NE(fail.out.find("FAIL lat < 200ms: lat 250 ms in run 13, threshold < 200 ms"), std::string::npos)
      << fail.out;
  EXPECT_NE(fail.out.find("FAIL warmup >= 1: warmup was not recorded by run 13, threshold >= 1.00 s"),
            std::string::npos)
      << fail.out;

  // No metric named: the built-in ones and both custom ones; only the throughput moved.
  const auto reg = gate(dir, db, "bench", {"no-regression"});
  EXPECT_EQ(reg.exit_code, kGateFailed) << reg.out << reg.err;
  EXPECT_NE(reg.out.find("FAIL no-regression items_per_s: items_per_s: latest 5 runs vs 8 baseline runs"),
            std::string::npos)
      << reg.out;
  EXPECT_NE(reg.out.find("PASS no-regression lat"), std::string::npos) << reg.out;
  EXPECT_NE(reg.out.find("SKIP no-regression warmup"), std::string::npos) << reg.out;
  const auto absent = gate(dir, db, "bench", {"absent >= 1"});
  EXPECT_EQ(absent.exit_code, 1);
  EXPECT_NE(absent.err.find("no metric 'absent' in the runs of label 'bench'"), std::string::npos)
      << absent.err;
  EXPECT_NE(reg.out.find("PASS no-regression wall"), std::string::npos) << reg.out;
  EXPECT_EQ(gate(dir, db, "bench", {"no-regression:lat"}).exit_code, 0);

  for (const char* bad : {"bad-name! > 1", "items_per_s > fast", "no-regression:1x"}) {
    const auto r = gate(dir, db, "bench", {bad});
    EXPECT_EQ(r.exit_code, 125) << bad << r.out << r.err;
  }
}
