// Custom metrics recorded by a run: the file format (units, bad lines, limits), a shell
// script and a C++ program (threads and a fork) writing under `spyglass run`, and the history
// read back by sqlite3 and the run JSON by Python's json module.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "spyglass/monitor/run_metrics.hpp"
#include "support.hpp"

namespace mon = spyglass::monitor;
using spyglass_test::kSpyglass;
using spyglass_test::run;
using spyglass_test::TempDir;

namespace {

const std::string kWriter = METRIC_WRITER_EXE;
const std::vector<std::string> kBuiltin = {"wall", "max_rss"};

std::string listed(const mon::RunMetricsRead& r) {
  std::string out;
  for (const auto& m : r.metrics) out += m.name + "=" + std::to_string(m.value) + m.unit + ";";
  return out;
}

// The spyglass-metrics-* files left in `dir`.
std::vector<std::string> metric_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("spyglass-metrics-", 0) == 0) out.push_back(e.path().string());
  }
  return out;
}

// `spyglass run` with its temporary files in `dir`.
spyglass_test::Result spyglass_run(const TempDir& dir, const std::vector<std::string>& command,
                                   const std::string& label = "m") {
  std::vector<std::string> argv = {
      "env", "TMPDIR=" + dir.path(), kSpyglass, "run", "--db", dir / "h.db", "--label", label, "-q", "--"};
  argv.insert(argv.end(), command.begin(), command.end());
  return run(argv, dir.path());
}

}  // namespace

TEST(RunMetricsFile, UnitsAreNormalisedAndTheLastValueWins) {
  const auto r = mon::parse_run_metrics(
      "items_per_s 1234.5\n"
      "lat 250 ms\n"
      "  # a comment, then a blank line\n"
      "\n"
      "t.us\t3 us\n"
      "heap 2 KiB\r\n"
      "disk 1.5 GB\n"
      "delta -4e-3\n"
      "items_per_s 99\n"
      "last 7 ns",  // no final newline
      kBuiltin);
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
  EXPECT_EQ(listed(r),
            "items_per_s=99.000000;lat=0.250000s;t.us=0.000003s;heap=2048.000000B;disk=1500000000.000000B;"
            "delta=-0.004000;last=0.000000s;");
  EXPECT_DOUBLE_EQ(r.metrics.back().value, 7e-9);
}

TEST(RunMetricsFile, BadLinesAreNamedAndTheOthersKept) {
  const auto r = mon::parse_run_metrics(
      "good 1\n"
      "noval\n"
      "1abc 2\n"
      "wall 3\n"
      "x inf\n"
      "y 12abc\n"
      "z 5 furlongs\n"
      "a b c d\n" +
          std::string(65, 'n') + " 1\n" + "kept 2 MiB\n",
      kBuiltin);
  EXPECT_EQ(listed(r), "good=1.000000;kept=2097152.000000B;");
  ASSERT_EQ(r.warnings.size(), 8u);
  EXPECT_EQ(r.warnings[0], "line 2: expected 'name value [unit]'");
  EXPECT_EQ(r.warnings[1], "line 3: name '1abc' is not [A-Za-z_][A-Za-z0-9_.]* of at most 64 characters");
  EXPECT_EQ(r.warnings[2], "line 4: name 'wall' is a built-in metric");
  EXPECT_EQ(r.warnings[3], "line 5: value 'inf' is not a finite number");
  EXPECT_EQ(r.warnings[4], "line 6: value '12abc' is not a finite number");
  EXPECT_EQ(r.warnings[5],
            "line 7: unit 'furlongs' is not one of s, ms, us, ns, B, KiB, MiB, GiB, kB, MB, GB");
  EXPECT_EQ(r.warnings[6], "line 8: expected 'name value [unit]'");
  EXPECT_NE(r.warnings[7].find("line 9: name 'nnn"), std::string::npos) << r.warnings[7];
}

TEST(RunMetricsFile, NamesAndSizeAreBounded) {
  std::string text;
  for (int i = 0; i < 1005; ++i) text += "m" + std::to_string(i) + " " + std::to_string(i) + "\n";
  text += "m3 33\n";  // a known name still takes its last value
  auto r = mon::parse_run_metrics(text, kBuiltin);
  ASSERT_EQ(r.metrics.size(), mon::kMaxRunMetrics);
  EXPECT_EQ(r.metrics[3].value, 33);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0], "line 1001: more than 1000 names; this and later new names are ignored");

  TempDir dir;
  const std::string big = dir / "big";
  {
    std::ofstream f(big);
    for (int i = 0; i < 100000; ++i) f << "same " << i << "\n";  // ~1.1 MiB
  }
  r = mon::read_run_metrics(big, kBuiltin);
  ASSERT_EQ(r.metrics.size(), 1u);
  EXPECT_GT(r.metrics[0].value, 90000);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("only the first 1048576 bytes were read"), std::string::npos) << r.warnings[0];
  r = mon::read_run_metrics(dir / "missing", kBuiltin);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0], "cannot read: No such file or directory");
}

TEST(RunMetricsCli, AShellScriptAndItsChildrenRecordThroughTheEnvironment) {
  TempDir dir;
  const auto r = spyglass_run(dir, {"sh", "-c",
                                    "echo \"items_per_s 1234.5\" >> \"$SPYGLASS_METRICS_FILE\"; "
                                    "sh -c 'echo \"lat 250 ms\" >> \"$SPYGLASS_METRICS_FILE\"' & wait; "
                                    "echo \"heap 3 MiB\" >> \"$SPYGLASS_METRICS_FILE\""});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  EXPECT_TRUE(metric_files(dir.path()).empty());  // read, then removed
  const auto q =
      run({"sqlite3", dir / "h.db", "SELECT run_id, name, value, unit FROM run_metrics ORDER BY name"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(q.out, "1|heap|3145728.0|B\n1|items_per_s|1234.5|\n1|lat|0.25|s\n");

  // The run JSON of `show` and `history` carries them; `show` prints them.
  const auto show = run({kSpyglass, "show", "1", "--db", dir / "h.db", "--json"}, dir.path());
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const auto hist = run({kSpyglass, "history", "--db", dir / "h.db", "--json"}, dir.path());
  ASSERT_EQ(hist.exit_code, 0) << hist.err;
  std::ofstream(dir / "show.json") << show.out;
  std::ofstream(dir / "history.json") << hist.out;
  const auto py = run({"python3", "-c", R"(
import json, sys
show = json.load(open(sys.argv[1]))
run = show.get("run", show)
want = {"heap": {"value": 3145728, "unit": "B"}, "items_per_s": {"value": 1234.5, "unit": ""},
        "lat": {"value": 0.25, "unit": "s"}}
assert run["metrics"] == want, run["metrics"]
hist = json.load(open(sys.argv[2]))
assert hist[0]["metrics"] == want, hist
print("ok")
)",
                       dir / "show.json", dir / "history.json"});
  EXPECT_EQ(py.out, "ok\n") << py.err;
  const auto text = run({kSpyglass, "show", "1", "--db", dir / "h.db"}, dir.path());
  EXPECT_NE(text.out.find("  metrics   heap 3.0 MiB  items_per_s 1234.5  lat 250 ms\n"), std::string::npos)
      << text.out;
}

TEST(RunMetricsCli, BadLinesWarnKeepTheRestAndTheFile) {
  TempDir dir;
  const std::string lines = "ok 1\nwall 2\nok2 3 parsecs\nlast 4\n";
  const auto r = spyglass_run(
      dir, {"sh", "-c",
            "printf 'ok 1\\nwall 2\\nok2 3 parsecs\\nlast 4\\n' >> \"$SPYGLASS_METRICS_FILE\"; exit 3"});
  EXPECT_EQ(r.exit_code, 3);  // the command's own exit status, whatever its metrics
  const auto files = metric_files(dir.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(spyglass_test::slurp(files[0]), lines);  // nothing lost
  EXPECT_NE(r.err.find("metrics file " + files[0] + ": line 2: name 'wall' is a built-in metric"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("metrics file " + files[0] + ": line 3: unit 'parsecs' is not one of"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("metrics file " + files[0] + " is kept; 2 metric(s) were recorded from it"),
            std::string::npos)
      << r.err;
  const auto q = run({"sqlite3", dir / "h.db", "SELECT name, value FROM run_metrics ORDER BY name"});
  EXPECT_EQ(q.out, "last|4.0\nok|1.0\n");
}

TEST(RunMetricsCli, ACppProgramRecordsFromThreadsAndAForkedChild) {
  TempDir dir;
  EXPECT_EQ(run({"env", "-u", "SPYGLASS_METRICS_FILE", kWriter, "outside"}).exit_code, 0);
  const auto r = spyglass_run(dir, {kWriter});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // 4,501 lines appended at once by 8 threads and 2 processes: every one read whole.
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  EXPECT_TRUE(metric_files(dir.path()).empty());
  const auto q = run({"sqlite3", dir / "h.db", "SELECT name, value, unit FROM run_metrics ORDER BY name"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  std::string want = "forked|510976.0|B\nitems_per_s|1234.5|\nthread.0|0.4995|s\n";
  for (int t = 1; t < 8; ++t) want += "thread." + std::to_string(t) + "|499.5|\n";
  EXPECT_EQ(q.out, want);
}

// `report --html` (the label page `serve` shows too) charts each custom metric over the
// runs that recorded it, read back by Python's HTML parser.
TEST(RunMetricsCli, TheLabelPageChartsEachCustomMetric) {
  TempDir dir;
  for (const char* script : {"echo 'items_per_s 10' >> \"$SPYGLASS_METRICS_FILE\"", "true",
                             "echo 'items_per_s 30' >> \"$SPYGLASS_METRICS_FILE\""}) {
    ASSERT_EQ(spyglass_run(dir, {"sh", "-c", script}, "page").exit_code, 0);
  }
  const auto r =
      run({kSpyglass, "report", "--label", "page", "--html", dir / "page.html", "--db", dir / "h.db"},
          dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto py = run({"python3", "-c", R"py(
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__(); self.figure = None; self.caption = False; self.charts = {}
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure": self.figure = a.get("data-metric"); self.charts[self.figure] = ["", []]
        if tag == "figcaption": self.caption = True
        if tag == "circle" and self.figure: self.charts[self.figure][1].append((a["data-run"], a["data-value"]))
    def handle_endtag(self, tag):
        if tag == "figure": self.figure = None
        if tag == "figcaption": self.caption = False
    def handle_data(self, d):
        if self.caption and self.figure: self.charts[self.figure][0] += d
p = P(); p.feed(open(sys.argv[1]).read())
assert p.charts["items_per_s"] == ["items_per_s (custom)", [("1", "10"), ("3", "30")]], p.charts.get("items_per_s")
assert len(p.charts["wall"][1]) == 3, p.charts["wall"]
print("ok")
)py",
                       dir / "page.html"});
  EXPECT_EQ(py.out, "ok\n") << py.err;
}
