// `spyglass detect` and `spyglass analyze --csv`: the JSON is read by Python's json
// module and every score recomputed with NumPy/SciPy (check_detect.py).

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numbers>
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
const std::string kChecker = CHECK_DETECT_PY;

// A CPU-like series every 5 minutes with spikes at 150 and 310 and a dip at 420.
std::vector<double> cpu_series() {
  auto v = noisy(500, 40.0, 2.0, 42);
  v[150] += 25;
  v[310] += 20;
  v[420] -= 22;
  return v;
}

std::string iso(std::size_t i, const char* sep = "T", const char* zone = "Z") {
  const std::size_t minutes = 5 * i;
  char buf[64];
  std::snprintf(buf, sizeof buf, "2026-03-%02zu%s%02zu:%02zu:00%s", 1 + minutes / 1440, sep,
                minutes / 60 % 24, minutes % 60, zone);
  return buf;
}

// Writes `header` and one row per value, the time from `stamp(i)`.
template <class F>
std::string write_csv(const TempDir& dir, const std::string& name, const std::vector<double>& v, F stamp,
                      const std::string& header = "ts,cpu") {
  const std::string path = dir / name;
  std::ofstream f(path);
  f << header << "\n";
  for (std::size_t i = 0; i < v.size(); ++i) {
    char val[32];
    std::snprintf(val, sizeof val, "%.3f", v[i]);
    f << stamp(i) << "," << val << "\n";
  }
  return path;
}

// Saves `json` to a file and runs Python `code` with that file as argv[1] (then `args`).
spyglass_test::Result python_on(const TempDir& dir, const std::string& json, const std::string& code,
                                const std::vector<std::string>& args = {}) {
  const std::string path = dir / "out.json";
  std::ofstream(path) << json;
  std::vector<std::string> argv = {kPython, "-c", code, path};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, dir.path());
}

// Runs detect with `extra` options and has check_detect.py verify the JSON.
void check_detect(const TempDir& dir, const std::string& csv, const std::string& method, bool offline,
                  const std::string& threshold, const std::vector<std::string>& extra = {},
                  const std::string& window = "60", std::size_t min_found = 1, bool name_method = true) {
  std::vector<std::string> argv = {kSpyglass, "detect",         "--csv", csv,     "--time-column",
                                   "ts",      "--value-column", "cpu",   "--json"};
  if (name_method) argv.insert(argv.end(), {"--method", method});
  if (offline) argv.push_back("--offline");
  argv.insert(argv.end(), extra.begin(), extra.end());
  const auto r = run(argv, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string out = dir / "out.json";
  std::ofstream(out) << r.out;
  const auto c = run(
      {kPython, kChecker, out, csv, "ts", "cpu", method, offline ? "1" : "0", threshold, window}, dir.path());
  ASSERT_EQ(c.exit_code, 0) << method << (offline ? " offline" : "") << ": " << c.out << c.err;
  ASSERT_EQ(c.out.rfind("ok ", 0), 0u) << c.out;
  EXPECT_GE(std::stoul(c.out.substr(3)), min_found) << method;
}

}  // namespace

TEST(AnalyticsCli, DetectOnlineMatchesSciPy) {
  TempDir dir;
  const auto csv = write_csv(dir, "cpu.csv", cpu_series(), [](std::size_t i) { return iso(i); });
  check_detect(dir, csv, "mad", false, "3.5");
  check_detect(dir, csv, "zscore", false, "3");
  check_detect(dir, csv, "iqr", false, "1.5");
  check_detect(dir, csv, "ewma", false, "4");
  check_detect(dir, csv, "mad", false, "5", {"--threshold", "5", "--window", "30"}, "30");
}

TEST(AnalyticsCli, DetectOfflineMatchesSciPy) {
  TempDir dir;
  const auto csv = write_csv(dir, "cpu.csv", cpu_series(), [](std::size_t i) { return iso(i, " ", ""); });
  check_detect(dir, csv, "mad", true, "3.5", {}, "60", 3);
  check_detect(dir, csv, "zscore", true, "3", {}, "60", 3);
  check_detect(dir, csv, "iqr", true, "1.5");
  // --offline alone: the robust whole-series method, mad.
  check_detect(dir, csv, "mad", true, "3.5", {}, "60", 3, false);
}

// A flat past has no spread: every method still gives each flagged point a finite score
// (the distance over 1% of the level), the same as NumPy/SciPy by that rule.
TEST(AnalyticsCli, DetectScoresAFlatPastFinitely) {
  TempDir dir;
  std::vector<double> v(120, 5.0);
  v[70] = 50;
  v[100] = 4.5;
  const auto csv = write_csv(dir, "flat.csv", v, [](std::size_t i) { return iso(i); });
  check_detect(dir, csv, "ewma", false, "4");
  check_detect(dir, csv, "mad", false, "3.5");
  check_detect(dir, csv, "zscore", false, "3");
  check_detect(dir, csv, "iqr", false, "1.5");
  check_detect(dir, csv, "iqr", true, "1.5", {}, "60", 2);
  std::vector<double> zero(60, 0.0);  // a level of 0: the distance itself
  zero[40] = 10;
  const auto zcsv = write_csv(dir, "zero.csv", zero, [](std::size_t i) { return iso(i); });
  check_detect(dir, zcsv, "mad", false, "3.5");
  check_detect(dir, zcsv, "ewma", false, "4");
}

TEST(AnalyticsCli, DetectFindsThePlantedSpikesAndKeepsTimestamps) {
  TempDir dir;
  // Unix seconds with decimals: printed back exactly as written, not as a number.
  const auto csv = write_csv(dir, "unix.csv", cpu_series(),
                             [](std::size_t i) { return std::to_string(1772323200 + 300 * i) + ".50"; });
  const auto r =
      run({kSpyglass, "detect", "--csv", csv, "--time-column", "ts", "--value-column", "cpu", "--json"},
          dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = python_on(dir, r.out,
                           "import json,sys; d=json.load(open(sys.argv[1]));"
                           "print(' '.join(a['timestamp'] for a in d['anomalies']))");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  for (std::size_t i : {150u, 310u, 420u}) {
    EXPECT_NE(c.out.find(std::to_string(1772323200 + 300 * i) + ".50"), std::string::npos)
        << i << ": " << c.out;
  }
}

TEST(AnalyticsCli, DetectUsesOnlyThePast) {
  // The verdicts on the first 300 points do not change when the rest of the file does.
  TempDir dir;
  auto v = cpu_series();
  const auto whole = write_csv(dir, "whole.csv", v, [](std::size_t i) { return iso(i); });
  v.resize(300);
  const auto head = write_csv(dir, "head.csv", v, [](std::size_t i) { return iso(i); });
  for (const char* method : {"mad", "ewma", "zscore", "iqr"}) {
    const auto a = run({kSpyglass, "detect", "--csv", whole, "--time-column", "ts", "--value-column", "cpu",
                        "--method", method},
                       dir.path());
    const auto b = run({kSpyglass, "detect", "--csv", head, "--time-column", "ts", "--value-column", "cpu",
                        "--method", method},
                       dir.path());
    ASSERT_EQ(a.exit_code, 0) << a.err;
    ASSERT_EQ(b.exit_code, 0) << b.err;
    // Lines after the summary: one per anomaly; those of the head are the whole's first.
    const auto rows = [](const std::string& s) { return s.substr(s.find('\n') + 1); };
    EXPECT_EQ(rows(a.out).rfind(rows(b.out), 0), 0u) << method << "\n" << a.out << "\n" << b.out;
  }
}

TEST(AnalyticsCli, AnalyzeJsonAgainstSciPy) {
  TempDir dir;
  // A rising series with a level shift at point 200 and a missing value.
  auto v = noisy(300, 100.0, 1.5, 7);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] += 0.02 * static_cast<double>(i) + (i >= 200 ? 12.0 : 0.0);
  const std::string csv = dir / "runs.csv";
  {
    std::ofstream f(csv);
    f << "when,\"wall, s\"\n";
    for (std::size_t i = 0; i < v.size(); ++i) {
      f << iso(i, "T", "+01:00") << ",";
      if (i != 50) f << v[i];
      f << "\r\n";
    }
  }
  const auto r = run({kSpyglass, "analyze", "--csv", csv, "--time-column", "when", "--value-column",
                      "wall, s", "--json", "--limit", "150", "--horizon", "5"},
                     dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = python_on(dir, r.out, R"(
import csv, json, sys
from scipy import stats
d = json.load(open(sys.argv[1]), parse_constant=lambda c: sys.exit("not JSON: " + c))
rows = [r for r in csv.DictReader(open(sys.argv[2], newline="")) if r["wall, s"] != ""]
y = [float(r["wall, s"]) for r in rows]
fit = stats.linregress(range(len(y)), y)
t = d["trend"]
assert d["series"]["points"] == len(y) == 299 and d["series"]["missing"] == 1, d["series"]
assert abs(t["slope_per_point"] - fit.slope) <= 1e-9 * abs(fit.slope), (t, fit)
assert abs(t["r2"] - fit.rvalue ** 2) <= 1e-9 * fit.rvalue ** 2, (t, fit)
assert t["significant"] and t["verdict"].startswith("rising"), t
assert abs(t["slope_per_day"] - stats.linregress([5 * 60 * i for i in range(300) if i != 50], y).slope * 86400) < 1e-6
cps = d["change_points"]
assert any(abs(c["index"] - 199) <= 3 and c["p_value"] < 0.05 for c in cps), cps
assert any(c["timestamp"] == rows[c["index"]]["when"] for c in cps), cps
f = d["forecast"]
assert len(f["mean"]) == len(f["lower"]) == len(f["upper"]) == 5, f
assert all(lo < m < hi for lo, m, hi in zip(f["lower"], f["mean"], f["upper"])), f
assert f["limit"] == 150 and f["steps_to_limit"] is not None and f["steps_to_limit"] > 5, f
print("ok")
)",
                           {csv});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err << r.out;
  EXPECT_EQ(c.out, "ok\n");

  const auto text = run(
      {kSpyglass, "analyze", "--csv", csv, "--time-column", "when", "--value-column", "wall, s"}, dir.path());
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* want : {"299 points", "1 missing", "trend: rising", "change points:", "forecast (Holt"}) {
    EXPECT_NE(text.out.find(want), std::string::npos) << want << "\n" << text.out;
  }
}

TEST(AnalyticsCli, AnalyzeSeasonalSeriesFindsTheShiftNotTheCycle) {
  // Ten days of 5-minute samples with a daily cycle ten times the noise; +4 from point 2000.
  TempDir dir;
  auto v = noisy(2880, 50.0, 1.0, 12);
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] += 10 * std::sin(2 * std::numbers::pi * static_cast<double>(i) / 288) + (i >= 2000 ? 4.0 : 0.0);
  }
  const auto csv =
      write_csv(dir, "cpu.csv", v, [](std::size_t i) { return std::to_string(1772323200 + 300 * i); });
  const auto r = run({kSpyglass, "analyze", "--csv", csv, "--time-column", "ts", "--value-column", "cpu",
                      "--season", "288", "--json"},
                     dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = python_on(dir, r.out, R"(
import json, sys
d = json.load(open(sys.argv[1]))
cps = d["change_points"]
assert len(cps) == 1 and abs(cps[0]["index"] - 2000) <= 3, cps
assert abs(cps[0]["mean_after"] - cps[0]["mean_before"] - 4) < 0.5, cps
assert d["forecast"]["method"] == "holt-winters" and d["forecast"]["season"] == 288, d["forecast"]
print("ok")
)");
  EXPECT_EQ(c.out, "ok\n") << c.err << r.out;
}

// With --season, anomalies are scored on the series without its cycle: spikes smaller than
// the cycle are found, with the scores SciPy gives on the deseasonalised series.
TEST(AnalyticsCli, AnalyzeSeasonalSeriesScoresAnomaliesWithoutTheCycle) {
  TempDir dir;
  auto v = noisy(288, 50.0, 1.0, 7);
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] += 20 * std::sin(2 * std::numbers::pi * static_cast<double>(i) / 24);
  for (std::size_t i : {50u, 130u, 200u}) v[i] += 12;
  const auto csv = write_csv(dir, "cpu.csv", v, [](std::size_t i) { return iso(i); });
  const auto r = run({kSpyglass, "analyze", "--csv", csv, "--time-column", "ts", "--value-column", "cpu",
                      "--season", "24", "--json"},
                     dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = python_on(dir, r.out, R"(
import csv, json, sys
import numpy as np
from scipy import stats
d = json.load(open(sys.argv[1]))
x = np.array([float(row["cpu"]) for row in csv.DictReader(open(sys.argv[2]))])
rest = x.copy()
for k in range(24):
    rest[k::24] = x[k::24] - np.median(x[k::24]) + np.median(x)
z = 0.6745 * (rest - np.median(rest)) / stats.median_abs_deviation(rest)
want = [int(i) for i in np.flatnonzero(np.abs(z) > 3.5)]
got = [a["line"] - 2 for a in d["anomalies"]]
assert want == got and {50, 130, 200} <= set(got), (want, got)
for a in d["anomalies"]:
    i = a["line"] - 2
    assert a["value"] == x[i] and abs(a["score"] - z[i]) <= 1e-9 * abs(z[i]), (a, z[i])
print("ok")
)",
                           {csv});
  EXPECT_EQ(c.out, "ok\n") << c.err << r.out;
}

// One spike in a long series, plain or seasonal, is an anomaly and no change point; a
// change of spread alone is worded as one ("spread x..."), its ratio NumPy's.
TEST(AnalyticsCli, AnalyzeReportsABlipAsAnAnomalyAndASpreadChangeAsSuch) {
  TempDir dir;
  auto flat = noisy(500, 100.0, 1.0, 21);
  flat[300] += 40;
  auto cycle = noisy(480, 100.0, 1.0, 22);
  for (std::size_t i = 0; i < cycle.size(); ++i)
    cycle[i] += 20 * std::sin(2 * std::numbers::pi * static_cast<double>(i) / 48);
  cycle[400] += 30;
  for (const auto& [v, season] : {std::pair{flat, "0"}, std::pair{cycle, "48"}}) {
    const auto csv = write_csv(dir, "blip.csv", v, [](std::size_t i) { return iso(i); });
    std::vector<std::string> argv = {kSpyglass, "analyze",        "--csv", csv,     "--time-column",
                                     "ts",      "--value-column", "cpu",   "--json"};
    if (std::string(season) != "0") argv.insert(argv.end(), {"--season", season});
    const auto r = run(argv, dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto c = python_on(dir, r.out,
                             "import json,sys; d=json.load(open(sys.argv[1]));"
                             "print(len(d['change_points']), (300 if sys.argv[2] == '0' else 400) in "
                             "[a['line'] - 2 for a in d['anomalies']])",
                             {season});
    EXPECT_EQ(c.out, "0 True\n") << season << c.err << r.out;
  }
  auto spread = noisy(400, 0.0, 1.0, 23);
  for (std::size_t i = 0; i < spread.size(); ++i) spread[i] = 10 + spread[i] * (i < 200 ? 0.2 : 2.0);
  const auto csv = write_csv(dir, "spread.csv", spread, [](std::size_t i) { return iso(i); });
  const auto r =
      run({kSpyglass, "analyze", "--csv", csv, "--time-column", "ts", "--value-column", "cpu", "--json"},
          dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = python_on(dir, r.out, R"(
import csv, json, sys
import numpy as np
d = json.load(open(sys.argv[1]))
x = np.array([float(row["cpu"]) for row in csv.DictReader(open(sys.argv[2]))])
cps = d["change_points"]
assert len(cps) == 1 and abs(cps[0]["index"] - 200) <= 5 and cps[0]["kind"] == "variance", cps
k = cps[0]["index"]
ratio = np.std(x[k:]) / np.std(x[:k])
assert abs(cps[0]["spread_ratio"] - ratio) <= 1e-9 * ratio, (cps, ratio)
print("ok %.2g" % ratio)
)",
                           {csv});
  EXPECT_EQ(c.out.substr(0, 3), "ok ") << c.out << c.err << r.out;
  const auto text =
      run({kSpyglass, "analyze", "--csv", csv, "--time-column", "ts", "--value-column", "cpu"}, dir.path());
  EXPECT_NE(text.out.find("  spread x" + c.out.substr(3, c.out.size() - 4) + " starting at line"),
            std::string::npos)
      << text.out;
}

TEST(AnalyticsCli, BadCsvNamesTheLine) {
  TempDir dir;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return dir / name;
  };
  struct Case {
    std::string file, time_col, want;
  };
  const std::vector<Case> cases = {
      {write("nocol.csv", "ts,mem\n2026-01-01 00:00:00,1\n"), "ts", "nocol.csv:1: no value column 'cpu'"},
      {write("notime.csv", "t,cpu\n1,2\n"), "ts", "notime.csv:1: no time column 'ts'"},
      {write("value.csv", "ts,cpu\n1,2\n2,3\n3,abc\n"), "ts",
       "value.csv:4: column 'cpu': not a number: 'abc'"},
      {write("time.csv", "ts,cpu\n2026-01-01 00:00:00,2\n2026-13-01 00:00:00,3\n"), "ts",
       "time.csv:3: column 'ts': not a timestamp: '2026-13-01 00:00:00'"},
      {write("fields.csv", "ts,cpu\n1,2\n2,3,4\n"), "ts",
       "fields.csv:3: expected 2 fields as in the header, got 3"},
      {write("quote.csv", "ts,cpu\n1,\"2\n"), "ts", "quote.csv:2: malformed quoted field"},
      {write("empty.csv", ""), "ts", "empty.csv: empty file"},
      {dir / "absent.csv", "ts", "absent.csv: cannot open"},
  };
  for (const auto& c : cases) {
    for (const char* cmd : {"detect", "analyze"}) {
      const auto r =
          run({kSpyglass, cmd, "--csv", c.file, "--time-column", c.time_col, "--value-column", "cpu"},
              dir.path());
      EXPECT_EQ(r.exit_code, 1) << cmd << " " << c.file;
      EXPECT_NE(r.err.find(c.want), std::string::npos) << cmd << ": " << r.err;
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
  }
  // Usage errors: exit 125, the usage-error status of every subcommand, before the file is read.
  const auto csv = write("ok.csv", "ts,cpu\n1,2\n2,3\n3,4\n");
  for (const auto& args : std::vector<std::vector<std::string>>{{"--method", "bogus"},
                                                                {"--method", "ewma", "--offline"},
                                                                {"--threshold", "-1"},
                                                                {"--window", "2"}}) {
    std::vector<std::string> argv = {kSpyglass,       "detect", "--csv",          csv,
                                     "--time-column", "ts",     "--value-column", "cpu"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = run(argv, dir.path());
    EXPECT_EQ(r.exit_code, 125) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find(args[0]), std::string::npos) << r.err;
  }
  // analyze scores against the whole series, so ewma is not among its methods: the error
  // says so in analyze's own terms, and its help does not offer ewma.
  for (const std::vector<std::string>& source :
       {std::vector<std::string>{"--csv", csv, "--time-column", "ts", "--value-column", "cpu"},
        std::vector<std::string>{"--label", "an", "--db", dir / "none.db"}}) {
    std::vector<std::string> argv = {kSpyglass, "analyze", "--method", "ewma"};
    argv.insert(argv.end(), source.begin(), source.end());
    const auto e = run(argv, dir.path());
    EXPECT_EQ(e.exit_code, 125) << e.err;
    EXPECT_NE(
        e.err.find("--method ewma judges each point by its past only; analyze scores every point against "
                   "the whole series: mad (the default), zscore or iqr"),
        std::string::npos)
        << e.err;
    EXPECT_EQ(e.err.find("--offline"), std::string::npos) << e.err;
  }
  const auto help = run({kSpyglass, "analyze", "--help"}, dir.path());
  EXPECT_NE(help.out.find("  --method mad|zscore|iqr\n"), std::string::npos) << help.out;
  const auto r = run({kSpyglass, "detect", "--csv", csv, "--time-column", "ts"}, dir.path());
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("--value-column is required"), std::string::npos) << r.err;
  // Too short to analyse: a clear error, not a crash.
  const auto s = run({kSpyglass, "analyze", "--csv", write("short.csv", "ts,cpu\n1,2\n2,3\n"),
                      "--time-column", "ts", "--value-column", "cpu"},
                     dir.path());
  EXPECT_EQ(s.exit_code, 1);
  EXPECT_NE(s.err.find("needs at least 3 points"), std::string::npos) << s.err;
}

TEST(AnalyticsCli, TimestampFormats) {
  TempDir dir;
  // The same instant in five spellings, then later ones; all accepted and echoed verbatim.
  const std::string csv = dir / "t.csv";
  std::ofstream(csv) << "ts,cpu\n"
                        "2026-03-01T10:00:00Z,1\n"
                        "2026-03-01 10:00:00,1\n"
                        "2026-03-01T11:00:00+01:00,1\n"
                        "2026-03-01T05:00:00-0500,1\n"
                        "1772359200,1\n"
                        "2026-03-01T10:00:00.250Z,1\n"
                        "2026-03-02,1\n"
                        "\"2026-03-02 00:00:01\",1\n";
  const auto r =
      run({kSpyglass, "analyze", "--csv", csv, "--time-column", "ts", "--value-column", "cpu", "--json"},
          dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = python_on(dir, r.out,
                           "import json,sys; d=json.load(open(sys.argv[1]))['series'];"
                           "print(d['points'], d['first'], '|', d['last'])");
  EXPECT_EQ(c.out, "8 2026-03-01T10:00:00Z | 2026-03-02 00:00:01\n") << c.err;
}

// ISO 8601 without seconds and in the basic format, and Unix times in ms, us and ns (by
// magnitude, or --time-unit), in rows out of time order: the rows are sorted (a warning
// names both lines), and each time agrees with Python's datetime.fromisoformat: the
// values are the minutes since the first instant, so the fitted slope is exactly 1440 per
// day (as scipy.stats.linregress finds on Python's times) only if every time is right.
TEST(AnalyticsCli, TimestampsInMoreFormatsAndOutOfOrder) {
  TempDir dir;
  const std::string csv = dir / "t.csv";
  std::ofstream(csv) << "ts,cpu\n"
                        "2026-03-01T10:00Z,0\n"
                        "2026-03-01T10:02,2\n"
                        "20260301T100100Z,1\n"  // before the line above: sorted
                        "20260301T1103+0100,3\n"
                        "1772359440000,4\n"        // ms
                        "1772359500000000,5\n"     // us
                        "1772359560000000000,6\n"  // ns
                        "2026-03-01 10:07,7\n";
  const auto r =
      run({kSpyglass, "analyze", "--csv", csv, "--time-column", "ts", "--value-column", "cpu", "--json"},
          dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("t.csv:4: '20260301T100100Z' is before line 3's '2026-03-01T10:02'"),
            std::string::npos)
      << r.err;
  const auto c = python_on(
      dir, r.out,
      "import csv,json,sys; from datetime import datetime, timezone; from scipy import stats\n"
      "d=json.load(open(sys.argv[1]))\n"
      "def t(s):\n"
      "  if s.isdigit(): return int(s) / 10**{13:3,16:6,19:9}[len(s)]\n"
      "  x=datetime.fromisoformat(s)\n"
      "  return (x if x.tzinfo else x.replace(tzinfo=timezone.utc)).timestamp()\n"
      "rows=list(csv.DictReader(open(sys.argv[2])))\n"
      "fit=stats.linregress([t(r['ts'])/86400 for r in rows],[float(r['cpu']) for r in rows])\n"
      "tr=d['trend']\n"
      "assert abs(fit.slope-1440)<1e-6 and abs(tr['slope_per_day']-fit.slope)<1e-6*1440, (fit, tr)\n"
      "assert tr['slope_per_point']==1 and tr['r2']==1, tr\n"
      "print(d['series']['points'], d['series']['first'], '|', d['series']['last'])",
      {csv});
  EXPECT_EQ(c.out, "8 2026-03-01T10:00Z | 2026-03-01 10:07\n") << c.err;
  // An explicit unit: 1772359200000 read as seconds is far in the future, not 10:00.
  const std::string ms = dir / "ms.csv";
  std::ofstream(ms) << "ts,cpu\n1772359200,1\n1772359260,2\n1772359320,3\n";
  for (const auto& [unit, want] :
       std::vector<std::pair<std::string, std::string>>{{"s", "1440"}, {"ms", "1440000"}}) {
    const auto u = run({kSpyglass, "analyze", "--csv", ms, "--time-column", "ts", "--value-column", "cpu",
                        "--time-unit", unit, "--json"},
                       dir.path());
    ASSERT_EQ(u.exit_code, 0) << u.err;
    const auto p = python_on(
        dir, u.out, "import json,sys; print(round(json.load(open(sys.argv[1]))['trend']['slope_per_day']))");
    EXPECT_EQ(p.out, want + "\n") << unit << p.err;
  }
  const auto bad = run({kSpyglass, "detect", "--csv", ms, "--time-column", "ts", "--value-column", "cpu",
                        "--time-unit", "min"},
                       dir.path());
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("--time-unit: not s, ms, us, ns or auto: 'min'"), std::string::npos) << bad.err;
}

// A duration cannot go below 0: the forecast of a noisy short wall time, whose Gaussian
// interval would reach below 0, is clamped there.
TEST(AnalyticsCli, HistoryForecastStaysAtOrAboveZero) {
  TempDir dir;
  const std::string db = dir / "history.db";
  {
    auto h = spyglass::monitor::History::open(db);
    for (int i = 0; i < 30; ++i) {
      spyglass::monitor::RunRecord r;
      r.label = "quick";
      r.command = "true";
      r.start_unix_ns = (1772323200LL + 60LL * i) * 1000000000LL;
      r.duration_ns = (i % 2 == 0 ? 1 : 9) * 1000000LL;  // 1 ms and 9 ms in turn
      r.end_unix_ns = r.start_unix_ns + r.duration_ns;
      h.insert(r, {}, 0);
    }
  }
  const auto r =
      run({kSpyglass, "analyze", "--label", "quick", "--metric", "wall", "--db", db, "--json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c =
      python_on(dir, r.out,
                "import json,sys; f=json.load(open(sys.argv[1]))['metrics']['wall']['forecast'];"
                "print(min(f['lower']) == 0, all(m >= 0 for m in f['mean']), max(f['upper']) > 0)");
  EXPECT_EQ(c.out, "True True True\n") << c.err << r.out;
}

// --since keeps the runs started at or after a time, for analyze and history alike; the
// counts are SQLite's own, read by Python.
TEST(AnalyticsCli, SinceLimitsTheRunsAnalysedAndListed) {
  TempDir dir;
  const std::string db = dir / "history.db";
  {
    auto h = spyglass::monitor::History::open(db);
    const auto noise = noisy(30, 1.0, 0.02, 5);
    for (int i = 0; i < 30; ++i) {
      spyglass::monitor::RunRecord r;
      r.label = "nightly";
      r.command = "job";
      r.start_unix_ns = (1772323200LL + 3600LL * i) * 1000000000LL;  // hourly from 2026-03-01
      r.duration_ns = static_cast<std::int64_t>(noise[static_cast<std::size_t>(i)] * 1e9);
      r.end_unix_ns = r.start_unix_ns + r.duration_ns;
      h.insert(r, {}, 0);
    }
  }
  const auto analysed = run({kSpyglass, "analyze", "--label", "nightly", "--since", "2026-03-01T10:00:00Z",
                             "--db", db, "--json", "--metric", "wall"},
                            dir.path());
  ASSERT_EQ(analysed.exit_code, 0) << analysed.err;
  const auto listed = run({kSpyglass, "history", "--label", "nightly", "--since",
                           std::to_string(1772323200 + 3600 * 25), "--limit", "100", "--db", db, "--json"},
                          dir.path());
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  const auto c = python_on(dir, analysed.out, R"(
import json, sqlite3, sys
d = json.load(open(sys.argv[1]))
con = sqlite3.connect(sys.argv[2])
since = lambda t: con.execute("SELECT count(*) FROM runs WHERE start_unix_ns >= ?", (t * 10**9,)).fetchone()[0]
assert d["runs"] == since(1772323200 + 36000) == 20, d["runs"]
listed = json.loads(sys.argv[3])
assert len(listed) == since(1772323200 + 3600 * 25) == 5, len(listed)
print("ok")
)",
                           {db, listed.out});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_EQ(c.out, "ok\n");
  // Nothing since then; a time that is none; --since with a series of its own.
  auto r = run({kSpyglass, "analyze", "--label", "nightly", "--since", "2027-01-01", "--db", db}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("since the given time"), std::string::npos) << r.err;
  r = run({kSpyglass, "history", "--since", "yesterday", "--db", db}, dir.path());
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("--since: not a time"), std::string::npos) << r.err;
  r = run(
      {kSpyglass, "analyze", "--csv", "x.csv", "--time-column", "t", "--value-column", "v", "--since", "now"},
      dir.path());
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("--since goes with --label"), std::string::npos) << r.err;
}

// --limit per metric, in the metric's unit: peak RSS and wall time grow by a fixed step
// per run, so the forecast is the straight line and the run count to each limit is NumPy's
// extrapolation of the history file. A bare value needs exactly one --metric.
TEST(AnalyticsCli, LimitsPerMetricTakeUnits) {
  TempDir dir;
  const std::string db = dir / "history.db";
  {
    auto h = spyglass::monitor::History::open(db);
    for (int i = 0; i < 10; ++i) {
      spyglass::monitor::RunRecord r;
      r.label = "cp";
      r.command = "job";
      r.start_unix_ns = (1772323200LL + 3600LL * i) * 1000000000LL;
      r.duration_ns = static_cast<std::int64_t>((1.0 + 0.03 * i) * 1e9);
      r.end_unix_ns = r.start_unix_ns + r.duration_ns;
      r.max_rss_bytes = static_cast<std::uint64_t>(1024 + 60 * i) << 20;
      h.insert(r, {}, 0);
    }
  }
  auto analyze = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {kSpyglass, "analyze", "--label", "cp", "--db", db};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv, dir.path());
  };
  const auto r = analyze({"--limit", "max_rss=2GiB", "--limit", "wall=1.5s", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = python_on(dir, r.out, R"(
import json, math, sqlite3, sys
import numpy as np
d = json.load(open(sys.argv[1]))["metrics"]
con = sqlite3.connect(sys.argv[2])
for metric, column, limit in (("max_rss", "max_rss_bytes", 2 * 1024**3), ("wall", "duration_ns", 1.5e9)):
    y = np.array([r[0] for r in con.execute("SELECT %s FROM runs ORDER BY start_unix_ns" % column)], float)
    slope, _ = np.polyfit(np.arange(len(y)), y, 1)
    want = math.ceil((limit - y[-1]) / slope)
    f = d[metric]["forecast"]
    scale = 1e9 if metric == "wall" else 1
    assert abs(f["limit"] - limit / scale) <= 1e-12 * limit / scale, (metric, f["limit"])
    assert f["steps_to_limit"] == want, (metric, f["steps_to_limit"], want)
for metric in ("cpu_user", "read_bytes"):
    assert "limit" not in d[metric]["forecast"], metric
print("ok")
)",
                           {db});
  EXPECT_EQ(c.out, "ok\n") << c.err;
  // One --metric: a bare value is in its unit.
  const auto one = analyze({"--metric", "max_rss", "--limit", "2GiB"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("  limit 2.00 GiB: reached in about 9 runs"), std::string::npos) << one.out;
  for (const auto& [extra, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--limit", "0.2"}, "--limit 0.2: which metric? give METRIC=VALUE"},
           {{"--metric", "wall", "--metric", "max_rss", "--limit", "1s"}, "--limit 1s: which metric?"},
           {{"--limit", "max_rss=2s"}, "--limit max_rss=2s: '2s' is not a size (a number with B, K"},
           {{"--limit", "wall=2GiB"}, "--limit wall=2GiB: '2GiB' is not a duration"},
           {{"--metric", "wall", "--limit", "max_rss=2GiB"}, "max_rss is not among the --metric analysed"},
           {{"--limit", "wall=1s", "--limit", "wall=2s"}, "--limit: wall has two limits"}}) {
    const auto bad = analyze(extra);
    EXPECT_EQ(bad.exit_code, 125) << bad.out;
    EXPECT_NE(bad.err.find(says), std::string::npos) << bad.err;
    EXPECT_EQ(bad.out, "");
  }
  // A name no run recorded (it could be a custom metric's): told once the runs are read.
  const auto unknown = analyze({"--limit", "rss=2GiB"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.out;
  EXPECT_NE(unknown.err.find("label 'cp': no metric 'rss' in its runs (metrics: wall, cpu_user"),
            std::string::npos)
      << unknown.err;
  EXPECT_EQ(unknown.out, "");
  const auto csv = run({kSpyglass, "analyze", "--csv", "x.csv", "--time-column", "t", "--value-column", "v",
                        "--limit", "wall=1s"},
                       dir.path());
  EXPECT_EQ(csv.exit_code, 125);
  EXPECT_NE(csv.err.find("METRIC=VALUE goes with --label"), std::string::npos) << csv.err;
}

// Without --label, analyze takes every label of the history: one section each, or one
// member each of a JSON object keyed by label; a label with too few runs says so and the
// others go on. Each label's trend is checked with SciPy on the history file.
TEST(AnalyticsCli, AnalyzeEveryLabelWithoutOne) {
  TempDir dir;
  const std::string db = dir / "history.db";
  {
    auto h = spyglass::monitor::History::open(db);
    const std::vector<std::pair<std::string, int>> labels = {{"build \"a\"", 12}, {"tests", 9}, {"young", 2}};
    for (const auto& [label, n] : labels) {
      const auto noise = noisy(static_cast<std::size_t>(n), 0.0, 0.02, static_cast<std::uint64_t>(n));
      for (int i = 0; i < n; ++i) {
        spyglass::monitor::RunRecord r;
        r.label = label;
        r.command = "job";
        r.start_unix_ns = (1772323200LL + 3600LL * i) * 1000000000LL;
        r.duration_ns =
            static_cast<std::int64_t>((1.0 + 0.01 * n * i + noise[static_cast<std::size_t>(i)]) * 1e9);
        r.end_unix_ns = r.start_unix_ns + r.duration_ns;
        h.insert(r, {}, 0);
      }
    }
  }
  const auto j = run({kSpyglass, "analyze", "--metric", "wall", "--db", db, "--json"}, dir.path());
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto c = python_on(dir, j.out, R"(
import json, sqlite3, sys
from scipy import stats
d = json.load(open(sys.argv[1]))
con = sqlite3.connect(sys.argv[2])
labels = [r[0] for r in con.execute("SELECT DISTINCT label FROM runs")]
assert sorted(d) == sorted(labels), (list(d), labels)
assert d["young"] == {"error": "label 'young': needs at least 3 successful runs to analyse, found 2"}, d["young"]
for label in ('build "a"', "tests"):
    wall = [r[0] / 1e9 for r in con.execute("SELECT duration_ns FROM runs WHERE label = ? ORDER BY start_unix_ns",
                                            (label,))]
    assert d[label]["label"] == label and d[label]["runs"] == len(wall), d[label]
    fit = stats.linregress(range(len(wall)), wall)
    t = d[label]["metrics"]["wall"]["trend"]
    assert abs(t["slope_per_point"] - fit.slope) <= 1e-9 * abs(fit.slope), (label, t, fit)
print("ok")
)",
                           {db});
  EXPECT_EQ(c.out, "ok\n") << c.err;
  const auto text = run({kSpyglass, "analyze", "--metric", "wall", "--db", db}, dir.path());
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* says : {"label build \"a\": 12 successful runs", "\nlabel tests: 9 successful runs",
                           "\nlabel 'young': needs at least 3 successful runs to analyse, found 2\n"}) {
    EXPECT_NE(text.out.find(says), std::string::npos) << says << "\n" << text.out;
  }
  // Nothing since then, or no label with enough runs: exit 1, said.
  const auto none = run({kSpyglass, "analyze", "--since", "2099-01-01", "--db", db}, dir.path());
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no runs since the given time"), std::string::npos) << none.err;
  const auto young = run({kSpyglass, "analyze", "--since", "2026-03-01T01:00:00Z", "--db", db}, dir.path());
  EXPECT_EQ(young.exit_code, 0) << young.err;  // the two bigger labels still have runs since then
  const auto missing = run({kSpyglass, "analyze", "--db", dir / "absent.db"}, dir.path());
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
}

// A custom metric recorded by real runs (a shell script appending to the metrics file),
// analysed as the built-in ones: its trend is SciPy's over the runs that recorded it.
TEST(AnalyticsCli, AnalyzeCustomMetricAgainstSciPy) {
  TempDir dir;
  const std::string db = dir / "history.db";
  const std::vector<std::string> values = {"100", "104.5", "103", "110", "", "112", "118.25", "121", "125"};
  for (const auto& v : values) {
    const std::string script =
        v.empty() ? "true"
                  : "echo \"items_per_s " + v +
                        "\" >> \"$SPYGLASS_METRICS_FILE\"; echo \"lat 2 ms\" >> \"$SPYGLASS_METRICS_FILE\"";
    const auto r =
        run({kSpyglass, "run", "-q", "--db", db, "--label", "bench", "--", "sh", "-c", script}, dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const auto r = run({kSpyglass, "analyze", "--label", "bench", "--db", db, "--json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = python_on(dir, r.out, R"(
import json, sqlite3, sys
from scipy import stats
d = json.load(open(sys.argv[1]), parse_constant=lambda c: sys.exit("not JSON: " + c))
con = sqlite3.connect(sys.argv[2])
rows = con.execute("SELECT m.run_id, m.value FROM run_metrics m JOIN runs r ON r.id = m.run_id "
                   "WHERE m.name = 'items_per_s' ORDER BY r.start_unix_ns, r.id").fetchall()
y = [v for _, v in rows]
assert y == [100, 104.5, 103, 110, 112, 118.25, 121, 125], y  # the run without it is no point
assert list(d["metrics"])[-2:] == ["items_per_s", "lat"], list(d["metrics"])
m = d["metrics"]["items_per_s"]
assert m["unit"] == "" and d["metrics"]["lat"]["unit"] == "s", m
fit = stats.linregress(range(len(y)), y)
t = m["trend"]
assert abs(t["slope_per_point"] - fit.slope) <= 1e-9 * abs(fit.slope), (t, fit)
assert abs(t["r2"] - fit.rvalue ** 2) <= 1e-9 * fit.rvalue ** 2, (t, fit)
assert abs(t["p_value"] - fit.pvalue) <= 1e-9 * fit.pvalue, (t, fit)
print("ok")
)",
                           {db});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_EQ(c.out, "ok\n");

  const auto text =
      run({kSpyglass, "analyze", "--label", "bench", "--db", db, "--metric", "items_per_s"}, dir.path());
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("== items_per_s ==\nsummary: mean 111.7"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("== wall =="), std::string::npos) << text.out;
  const auto none =
      run({kSpyglass, "analyze", "--label", "bench", "--db", db, "--metric", "absent"}, dir.path());
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("label 'bench': no metric 'absent' in its runs (metrics: wall, cpu_user, cpu_sys, "
                          "max_rss, tree_peak_rss, read_bytes, write_bytes, items_per_s, lat)"),
            std::string::npos)
      << none.err;
}

TEST(AnalyticsCli, AnalyzeRunHistoryAgainstSciPy) {
  TempDir dir;
  const std::string db = dir / "history.db";
  {
    auto h = spyglass::monitor::History::open(db);
    const auto noise = noisy(41, 0.0, 0.02, 77);
    for (int i = 0; i < 41; ++i) {
      spyglass::monitor::RunRecord r;
      r.label = "nightly";
      r.command = "job";
      r.git_commit = "c" + std::to_string(i);
      r.start_unix_ns = (1772323200LL + 3600LL * i) * 1000000000LL;
      // 1 s, then 25% slower from the 31st successful run on; run 20 failed.
      const double wall = (i < 31 ? 1.0 : 1.25) + noise[static_cast<std::size_t>(i)];
      r.duration_ns = static_cast<std::int64_t>(wall * 1e9);
      r.end_unix_ns = r.start_unix_ns + r.duration_ns;
      r.user_cpu_ns = static_cast<std::uint64_t>(0.9 * static_cast<double>(r.duration_ns));
      r.max_rss_bytes = 100u << 20;
      r.exit_code = i == 20 ? 1 : 0;
      h.insert(r, {}, 0);
    }
  }
  const auto r = run({kSpyglass, "analyze", "--label", "nightly", "--db", db, "--json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = python_on(dir, r.out, R"(
import json, sqlite3, sys
from scipy import stats
d = json.load(open(sys.argv[1]), parse_constant=lambda c: sys.exit("not JSON: " + c))
con = sqlite3.connect(sys.argv[2])
rows = con.execute("SELECT id, duration_ns, user_cpu_ns FROM runs WHERE label = 'nightly' AND exit_code = 0 "
                   "AND (kill_reason IS NULL OR kill_reason = '') ORDER BY start_unix_ns").fetchall()
ids = [r[0] for r in rows]
wall = [r[1] / 1e9 for r in rows]
assert d["runs"] == len(rows) == 40 and d["excluded_runs"] == 1, (d["runs"], len(rows))
m = d["metrics"]["wall"]
fit = stats.linregress(range(len(wall)), wall)
assert abs(m["trend"]["slope_per_point"] - fit.slope) <= 1e-9 * abs(fit.slope), (m["trend"], fit)
assert abs(m["trend"]["p_value"] - fit.pvalue) <= 1e-9 * fit.pvalue, (m["trend"], fit)
cps = m["change_points"]
assert len(cps) == 1 and abs(cps[0]["index"] - 30) <= 2 and cps[0]["run_id"] == ids[cps[0]["index"]], cps
assert cps[0]["git_commit"] == "c%d" % (cps[0]["run_id"] - 1) and abs(cps[0]["relative_change"] - 0.25) < 0.05, cps
anomalous = {a["run_id"] for a in m["anomalies"]}
base = [w for i, w in zip(ids[:-5], wall[:-5]) if i not in anomalous][-20:]
mw = stats.mannwhitneyu(wall[-5:], base, alternative="two-sided")
g = m["regression"]
assert g["current_runs"] == 5 and g["baseline_runs"] == len(base) == 20, g
assert abs(g["mann_whitney_u"] - mw.statistic) < 1e-9 and abs(g["mann_whitney_p"] - mw.pvalue) <= 1e-9 * mw.pvalue, (g, mw)
assert g["regressed"] and not g["improved"], g
corr = d["correlations"]
top = corr[0]
assert {top["a"], top["b"]} == {"wall", "cpu_user"}, corr
sp = stats.spearmanr(wall, [r[2] / 1e9 for r in rows])
assert abs(top["spearman"] - sp[0]) <= 1e-9, (top, sp)
print("ok")
)",
                           {db});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_EQ(c.out, "ok\n");

  const auto text =
      run({kSpyglass, "analyze", "--label", "nightly", "--db", db, "--metric", "wall"}, dir.path());
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* want : {"40 successful runs", "1 failed or killed left out", "== wall ==", "rose +",
                           ", commit c", "REGRESSION"}) {
    EXPECT_NE(text.out.find(want), std::string::npos) << want << "\n" << text.out;
  }
  EXPECT_EQ(text.out.find("== cpu_user =="), std::string::npos);

  const auto bad =
      run({kSpyglass, "analyze", "--label", "nightly", "--db", db, "--metric", "speed"}, dir.path());
  EXPECT_EQ(bad.exit_code, 1);  // any name can be a custom metric's: none of these runs recorded it
  EXPECT_NE(bad.err.find("label 'nightly': no metric 'speed' in its runs (metrics: wall, cpu_user"),
            std::string::npos)
      << bad.err;
  const auto odd =
      run({kSpyglass, "analyze", "--label", "nightly", "--db", db, "--metric", "sp eed"}, dir.path());
  EXPECT_EQ(odd.exit_code, 125);
  EXPECT_NE(odd.err.find("no metric 'sp eed' (metrics: wall, cpu_user"), std::string::npos) << odd.err;
  const auto none = run({kSpyglass, "analyze", "--label", "absent", "--db", db}, dir.path());
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no runs labelled 'absent'"), std::string::npos) << none.err;
}

TEST(AnalyticsCli, EvaluateFloorsPerMethod) {
  // Labelled series (spikes, level shifts, trend and variance changes, seasonality,
  // missing points) scored by windows, the change-point and growth detectors on the kinds
  // they are for. A detector that gets worse fails here.
  TempDir dir;
  const auto r = run({kSpyglass, "evaluate", "--json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = python_on(dir, r.out, R"py(
import json, sys
d = json.load(open(sys.argv[1]))
m = {x["method"]: x for x in d["methods"]}
floors = {"ewma": (0.78, 0.88), "mad": (0.45, 0.85), "zscore": (0.33, 0.9), "iqr": (0.12, 0.9)}  # precision, recall
bad = []
for name, (p, r) in floors.items():
    x = m[name]
    if x["precision"] < p or x["recall"] < r:
        bad.append("%s: precision %.3f, recall %.3f, floors %.2f %.2f" % (name, x["precision"], x["recall"], p, r))
    f1 = 2 * x["precision"] * x["recall"] / (x["precision"] + x["recall"])
    if abs(f1 - x["f1"]) > 1e-12:
        bad.append("%s: f1 %r is not the harmonic mean" % (name, x["f1"]))
# F1 floors per method and kind, where the kind is one the method is for (no spike
# detector follows a slow trend change: that is the growth detector's).
kind_floors = {
    "ewma": {"spikes": 0.85, "level_shift": 0.72, "variance_change": 0.62, "seasonal": 0.88, "missing": 0.92},
    "mad": {"spikes": 0.78, "level_shift": 0.6, "variance_change": 0.38, "seasonal": 0.42, "missing": 0.78},
    "zscore": {"spikes": 0.67, "level_shift": 0.49, "variance_change": 0.27, "seasonal": 0.38, "missing": 0.71},
    "iqr": {"spikes": 0.34, "level_shift": 0.19, "variance_change": 0.08, "seasonal": 0.17, "missing": 0.36},
}
for name, floors_k in kind_floors.items():
    for kind, floor in floors_k.items():
        if m[name]["kinds"][kind]["f1"] < floor:
            bad.append("%s %s: F1 %.3f < %.2f" % (name, kind, m[name]["kinds"][kind]["f1"], floor))
# The change-point detector on shifts of level and spread, the growth detector on the trend
# change: (precision, recall) floors per kind.
s = {x["method"]: x["kinds"] for x in d["structural"]}
for name, kind, p, r in [("change-points", "level_shift", 0.95, 0.95), ("change-points", "variance_change", 0.95, 0.95),
                         ("growth", "trend_change", 0.9, 0.95)]:
    x = s[name][kind]
    if x["precision"] < p or x["recall"] < r:
        bad.append("%s %s: precision %.3f, recall %.3f, floors %.2f %.2f" % (name, kind, x["precision"], x["recall"], p, r))
if d["best"] != "ewma":
    bad.append("best is " + d["best"])
print("\n".join(bad) if bad else "ok")
)py");
  EXPECT_EQ(c.out, "ok\n") << c.err;
  // detect's default method is the evaluation's best.
  const std::string csv = dir / "s.csv";
  std::ofstream(csv) << "ts,cpu\n1,1\n2,2\n3,1\n";
  const auto d =
      run({kSpyglass, "detect", "--csv", csv, "--time-column", "ts", "--value-column", "cpu", "--json"},
          dir.path());
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find("\"method\":\"ewma\""), std::string::npos) << d.out;
}
