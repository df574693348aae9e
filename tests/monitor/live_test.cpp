// Live detection during `spyglass run`: LiveDetector on series with known answers, then
// real workloads (a CPU burst, a steady leak, steady runs) with the findings read back
// by Python's sqlite3 and json modules and the leak's slope checked against NumPy.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "spyglass/monitor/history.hpp"
#include "spyglass/monitor/live.hpp"
#include "support.hpp"

namespace {

namespace an = spyglass::analytics;
namespace mon = spyglass::monitor;
using spyglass_test::kSpyglass;
using spyglass_test::kWorkload;

constexpr double kMiB = 1024.0 * 1024.0;

// Runs a Python script with `args`; its assertions are the test's.
spyglass_test::Result python(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/python3", "-c", script};
  argv.insert(argv.end(), args.begin(), args.end());
  return spyglass_test::run(argv);
}

TEST(LiveDetector, FlagsABurstAfterAFlatPastOncePerDetector) {
  an::LiveDetector d;
  double t = 0;
  std::size_t began = 0;
  for (int i = 0; i < 100; ++i, t += 0.1) began += d.update(t, 0, 50 * kMiB);
  EXPECT_EQ(began, 0u);
  for (int i = 0; i < 10; ++i, t += 0.1) began += d.update(t, i == 3 ? 180 : 100, 50 * kMiB);
  for (int i = 0; i < 50; ++i, t += 0.1) began += d.update(t, 0, 50 * kMiB);
  ASSERT_EQ(d.findings().size(), 2u);  // one episode each for ewma and rolling-mad
  EXPECT_EQ(began, 2u);
  for (const auto& f : d.findings()) {
    EXPECT_STREQ(f.metric, "cpu");
    EXPECT_STREQ(f.kind, "spike");
    EXPECT_NEAR(f.start, 10.0, 1e-9);  // the burst's first point
    EXPECT_GT(f.score, 3.5);
  }
  EXPECT_STREQ(d.findings()[0].detector, "ewma");
  // The past was flat at 0: the distance itself is the score, finite.
  EXPECT_DOUBLE_EQ(d.findings()[0].score, 100.0);
  EXPECT_DOUBLE_EQ(d.findings()[1].score, 100.0);
  EXPECT_STREQ(d.findings()[1].detector, "rolling-mad");
}

// A finding pairs the strongest point's value with that point's time, not the episode's
// first time, and keeps the episode's start beside it.
TEST(LiveDetector, AFindingCarriesTheTimeOfItsStrongestPoint) {
  an::LiveDetector d;
  double t = 0;
  for (int i = 0; i < 100; ++i, t += 0.1) d.update(t, 10 + (i % 5), 50 * kMiB + (i % 7) * kMiB);
  const double rss[] = {100, 140, 260, 180, 120};  // MiB; the strongest at 10.2 s
  for (double r : rss) d.update(t, 12, r * kMiB), t += 0.1;
  for (int i = 0; i < 50; ++i, t += 0.1) d.update(t, 10 + (i % 5), 50 * kMiB + (i % 7) * kMiB);
  ASSERT_FALSE(d.findings().empty());
  for (const auto& f : d.findings()) {
    EXPECT_STREQ(f.metric, "rss");
    EXPECT_NEAR(f.start, 10.0, 1e-9) << f.detector;
    EXPECT_NEAR(f.t, 10.2, 1e-9) << f.detector;
    EXPECT_EQ(f.value, 260 * kMiB) << f.detector;
  }
}

TEST(LiveDetector, NoiseAloneIsNotFlagged) {
  an::LiveDetector::Options o;
  o.growth.window = 5;
  an::LiveDetector d(o);
  std::uint64_t x = 42;
  const auto uniform = [&x] {  // a fixed LCG: the same series on every run
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(x >> 11) / 9007199254740992.0;
  };
  for (int i = 0; i < 3000; ++i) d.update(0.1 * i, 50 + 20 * uniform(), 100 * kMiB + 4 * kMiB * uniform());
  EXPECT_TRUE(d.findings().empty()) << d.findings().front().metric << " " << d.findings().front().t;
}

TEST(LiveDetector, FlagsSteadyGrowthOnceTheWindowIsCovered) {
  an::LiveDetector::Options o;
  o.growth.window = 5;
  an::LiveDetector d(o);
  for (int i = 0; i <= 100; ++i) d.update(0.1 * i, 10, 10 * kMiB + i * kMiB);  // 10 MiB/s
  ASSERT_EQ(d.findings().size(), 1u);
  const auto& f = d.findings()[0];
  EXPECT_STREQ(f.kind, "leak");
  EXPECT_STREQ(f.detector, "growth");
  EXPECT_NEAR(f.start, 5.0, 1e-9);  // the first point whose window spans 5 s
  EXPECT_NEAR(f.score, 10 * kMiB, 1e-6 * kMiB);
}

TEST(LiveDetector, KeepsAtMostMaxFindingsAndRejectsBadInput) {
  an::LiveDetector::Options o;
  o.max_findings = 1;
  an::LiveDetector d(o);
  double t = 0;
  for (int burst = 0; burst < 3; ++burst) {
    for (int i = 0; i < 60; ++i, t += 0.1) d.update(t, 0, kMiB);
    for (int i = 0; i < 3; ++i, t += 0.1) d.update(t, 100, kMiB);
  }
  EXPECT_EQ(d.findings().size(), 1u);
  EXPECT_EQ(d.dropped(), 5u);  // 2 episodes a burst, one of them kept
  // A sample not later than the previous one, or not finite, is ignored.
  EXPECT_EQ(d.update(t - 1, 1000, kMiB), 0u);
  EXPECT_EQ(d.update(t + 1, NAN, kMiB), 0u);
  o.warmup = -1;
  EXPECT_THROW(an::LiveDetector{o}, an::AnalyticsError);
  o = {};
  o.ewma.alpha = 0;
  EXPECT_THROW(an::LiveDetector{o}, an::AnalyticsError);
}

TEST(History, StoresDetectionsOfARun) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  std::int64_t id = 0;
  {
    auto h = mon::History::open(db);
    mon::RunRecord r;
    r.label = "det";
    r.command = "x";
    r.detections = {{1500000000, "cpu", "spike", 97.5, HUGE_VAL, "ewma"},
                    {2000000000, "rss", "leak", 3.0 * kMiB, 1.5 * kMiB, "growth"}};
    id = h.insert(r, {}, 0);
  }
  auto h = mon::History::open(db, {.create = false, .read_only = true});
  const auto back = h.run(id);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->detections.size(), 2u);
  EXPECT_EQ(back->detections[0].offset_ns, 1500000000);
  EXPECT_EQ(back->detections[0].metric, "cpu");
  EXPECT_EQ(back->detections[0].kind, "spike");
  EXPECT_EQ(back->detections[0].value, 97.5);
  EXPECT_TRUE(std::isinf(back->detections[0].score));
  EXPECT_EQ(back->detections[0].detector, "ewma");
  EXPECT_EQ(back->detections[1].score, 1.5 * kMiB);
  EXPECT_TRUE(h.runs({}).at(0).detections.empty());  // only when asked for
  mon::HistoryQuery q;
  q.with_detections = true;
  EXPECT_EQ(h.runs(q).at(0).detections.size(), 2u);
  std::string json;
  mon::write_json(*back, json);
  EXPECT_NE(json.find(R"("detections":[{"offset_ns":1500000000,"metric":"cpu","kind":"spike","value":97.5,)"
                      R"("score":null,"detector":"ewma"})"),
            std::string::npos)
      << json;
}

// A version 5 database read as it is (read-only, not migrated): its runs have no findings.
TEST(History, ReadsAVersion5DatabaseWithoutDetections) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  std::int64_t id = 0;
  {
    auto h = mon::History::open(db, {.schema_version = 5});
    mon::RunRecord r;
    r.label = "old";
    r.command = "x";
    r.detections = {{1, "cpu", "spike", 1, 1, "ewma"}};  // nowhere to store them
    id = h.insert(r, {}, 0);
  }
  auto h = mon::History::open(db, {.create = false, .read_only = true});
  EXPECT_EQ(h.schema_version(), 5);
  const auto back = h.run(id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->label, "old");
  EXPECT_TRUE(back->detections.empty());
  const auto shown = spyglass_test::run({kSpyglass, "show", std::to_string(id), "--json", "--db", db});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find(R"("detections":[])"), std::string::npos) << shown.out;
  EXPECT_EQ(spyglass_test::run({"sqlite3", db, "PRAGMA user_version;"}).out, "5\n");  // not migrated
}

// The findings of every run in DB, as Python's sqlite3 reads them, checked against the
// `--json` files given as run_id=path.
const char* kReadBack = R"py(
import json, math, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
rows = con.execute("SELECT run_id, offset_ns, metric, kind, value, score, detector FROM detections "
                   "ORDER BY run_id, offset_ns, rowid").fetchall()
for arg in [a for a in sys.argv[2:] if "=" in a]:
    run_id, path = arg.split("=", 1)
    doc = json.load(open(path))
    got = [(d["offset_ns"], d["metric"], d["kind"], d["value"],
            math.inf if d["score"] is None else d["score"], d["detector"]) for d in doc["run"]["detections"]]
    want = [r[1:] for r in rows if r[0] == int(run_id)]
    assert got == want, (got, want)
print(json.dumps(rows))
)py";

TEST(LiveDetection, FlagsACpuBurstAndNothingBeforeIt) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db", js = dir / "run.json";
  // 2.5 s idle (0 % CPU), then 4 spinning threads for 1 s: even sharing both cores with
  // other busy processes they add far more than the minimum rise of 25 points.
  const auto r = spyglass_test::run({kSpyglass, "run", "--db", db, "--interval", "50ms", "--json", js, "--",
                                     kWorkload, "burst", "2.5", "4", "1", "0.3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("detected CPU spike at"), std::string::npos) << r.err;
  const auto q = python(std::string(kReadBack) + R"py(
cpu = [r for r in rows if r[2] == "cpu" and r[3] == "spike"]
assert {r[6] for r in cpu} == {"ewma", "rolling-mad"}, rows
# The burst as the stored samples show it: from the first to the last sample with the
# minimum rise of CPU (its start moves later when the machine is busy).
S = con.execute("SELECT t_ns, cpu_user_pct + cpu_sys_pct FROM samples WHERE run_id = 1 ORDER BY t_ns").fetchall()
busy = [t for t, c in S if c >= 25]
assert busy, S
for run_id, off, metric, kind, value, score, det in rows:
    assert off >= 2.5e9, rows  # nothing while idle
    assert busy[0] - 1e3 <= off <= busy[-1] + 1e3, (busy[0], busy[-1], rows)  # within the burst
    assert value >= 25 and score > 3.5, rows
    # the value is that of a sample of the episode
    assert any(t >= off - 1e3 and abs(c - value) <= 1e-9 * value for t, c in S), (value, rows)
for det in ("ewma", "rolling-mad"):  # first flagged as the burst starts
    first = min(r[1] for r in cpu if r[6] == det)
    assert any(abs(first - b) <= 1e3 for b in busy[:3]), (det, first, busy[:3])
print("ok")
)py",
                        {db, "1=" + js});
  EXPECT_EQ(q.exit_code, 0) << q.err << q.out;
  EXPECT_NE(q.out.find("ok"), std::string::npos) << q.err;
}

TEST(LiveDetection, FlagsASteadyLeakWithinTheWindowAndMigratesAVersion5Database) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db", js = dir / "run.json", off_js = dir / "off.json";
  {
    auto h = mon::History::open(db, {.schema_version = 5});
    mon::RunRecord old;
    old.label = "old";
    old.command = "x";
    h.insert(old, {}, 0);
  }
  // 2 MiB every 40 ms (50 MiB/s at most; less when the sleeps run late) for 3 s; the
  // leak window is 2 s.
  const std::vector<std::string> leak = {kWorkload, "leak", "2", "40", "75"};
  auto argv = std::vector<std::string>{kSpyglass, "run", "--db",          db,   "--interval", "50ms",
                                       "--json",  js,    "--leak-window", "2s", "--"};
  argv.insert(argv.end(), leak.begin(), leak.end());
  const auto r = spyglass_test::run(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("detected memory leak at"), std::string::npos) << r.err;
  // The same workload without live detection records nothing.
  argv = {kSpyglass, "run",           "--db", db,         "--interval", "50ms", "--json",
          off_js,    "--leak-window", "2s",   "--detect", "off",        "--"};
  argv.insert(argv.end(), leak.begin(), leak.end());
  const auto off = spyglass_test::run(argv);
  ASSERT_EQ(off.exit_code, 0) << off.err;
  EXPECT_EQ(off.err.find("detected"), std::string::npos) << off.err;

  // Flagged once the samples span the window, and at most kMonitorSlack after that
  // (the first sample past it, the workload's start and the sampler's own delays on a
  // loaded machine). The score is the slope of the least-squares line over the window,
  // as NumPy fits it: at least the fit at the first flagged sample, at most the largest
  // fit of the episode.
  const auto q = python(std::string(kReadBack) + R"py(
import numpy as np
window, slack = 2.0, float(sys.argv[-1])
assert con.execute("PRAGMA user_version").fetchone()[0] == 9
assert con.execute("SELECT label FROM runs WHERE id = 1").fetchone()[0] == "old"
assert [r[0] for r in rows] == [2] * len(rows), rows  # none for the old run nor with --detect off
leaks = [r for r in rows if r[3] == "leak"]
# one episode, unless the leak stalls while the machine is busy (then the growth is
# flagged again when it resumes)
assert leaks and all(r[2] == "rss" and r[6] == "growth" for r in leaks), rows
_, off, _, _, value, score, _ = leaks[0]
assert window * 1e9 <= off <= (window + slack) * 1e9, leaks
S = con.execute("SELECT t_ns, rss_bytes FROM samples WHERE run_id = 2 ORDER BY t_ns").fetchall()
ts = np.array([s[0] for s in S]) / 1e9
xs = np.array([float(s[1]) for s in S])
i = int(np.argmin(abs(ts - off / 1e9)))
assert abs(ts[i] * 1e9 - off) < 1e3, (ts[i], off)
def fit(k):
    j = int(np.nonzero(ts <= ts[k] - window)[0][-1])
    slope, _ = np.polyfit(ts[j:k + 1], xs[j:k + 1], 1)
    r2 = np.corrcoef(ts[j:k + 1], xs[j:k + 1])[0, 1] ** 2
    return slope, r2
first, r2 = fit(i)
assert r2 >= 0.8 and first * window >= 8 * 2**20, (first, r2)
most = max(fit(k)[0] for k in range(i, len(ts)))
assert first * (1 - 1e-6) <= score <= most * (1 + 1e-6), (first, score, most)
assert score <= 2 * 2**20 / 0.040 * 1.05, score
assert value <= xs.max(), (value, xs.max())
print("ok")
)py",
                        {db, "2=" + js, "3=" + off_js, std::to_string(spyglass_test::kMonitorSlack)});
  EXPECT_EQ(q.exit_code, 0) << q.err << q.out;
  EXPECT_NE(q.out.find("ok"), std::string::npos) << q.err;
  // show, text and JSON.
  const auto shown = spyglass_test::run({kSpyglass, "show", "2", "--db", db});
  EXPECT_NE(shown.out.find("detected  memory leak at"), std::string::npos) << shown.out;
  const auto shown_json = spyglass_test::run({kSpyglass, "show", "2", "--json", "--db", db});
  EXPECT_NE(shown_json.out.find(R"("kind":"leak")"), std::string::npos) << shown_json.out;
  const auto old_json = spyglass_test::run({kSpyglass, "show", "1", "--json", "--db", db});
  EXPECT_NE(old_json.out.find(R"("detections":[])"), std::string::npos) << old_json.out;
}

TEST(LiveDetection, SteadyRunsAreNotFlagged) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  // A sleeping command, and one holding 64 MiB, judged for leaks over 2 s windows.
  const auto s = spyglass_test::run({kSpyglass, "run", "--db", db, "--interval", "50ms", "--", "sleep", "2"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const auto h = spyglass_test::run({kSpyglass, "run", "--db", db, "--interval", "50ms", "--leak-window",
                                     "2s", "--json", dir / "hold.json", "--", kWorkload, "hold", "64", "3"});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  const auto q = python(std::string(kReadBack) + R"py(
assert rows == [], rows
assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
print("ok")
)py",
                        {db, "2=" + (dir / "hold.json")});
  EXPECT_EQ(q.exit_code, 0) << q.err << q.out;
  EXPECT_NE(q.out.find("ok"), std::string::npos) << q.err;
}

TEST(LiveDetection, BadOptionsAreUsageErrorsAndRunNothing) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  const auto a = spyglass_test::run({kSpyglass, "run", "--db", db, "--detect", "maybe", "--", "true"});
  EXPECT_EQ(a.exit_code, 125);
  EXPECT_NE(a.err.find("--detect"), std::string::npos) << a.err;
  const auto b = spyglass_test::run({kSpyglass, "run", "--db", db, "--leak-window", "0", "--", "true"});
  EXPECT_EQ(b.exit_code, 125);
  EXPECT_NE(b.err.find("--leak-window: must be at least 1s"), std::string::npos) << b.err;
  const auto c = spyglass_test::run({kSpyglass, "run", "--db", db, "--leak-window", "soon", "--", "true"});
  EXPECT_EQ(c.exit_code, 125);
  EXPECT_NE(c.err.find("--leak-window"), std::string::npos) << c.err;
  EXPECT_FALSE(std::filesystem::exists(db));
}

}  // namespace
