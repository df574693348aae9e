// The pages of `spyglass serve` (on loopback, over a seeded history) and the static report
// of `spyglass report` (opened from a file) in Debian's headless Chromium: the charts hold
// the seeded points and marks as the browser laid them out, with no console error, no
// failed request and no request leaving the machine. Screenshots go to screenshots/.

#include <simdjson.h>

#include "seed.hpp"

namespace {

using namespace spyglass_test;

// What the browser sees of a page: per chart, its points (run or time, value, drawn),
// anomalies, change points, regressions, bands, detections and limit lines (drawn); the
// tables' rows; the tails.
constexpr const char* kProbe = R"js((() => {
  const charts = {};
  for (const f of document.querySelectorAll('figure.chart')) {
    const all = (sel) => [...f.querySelectorAll(sel)];
    charts[f.dataset.metric] = {
      runs: all('circle.pt').map(c => Number(c.dataset.run ?? -1)),
      times: all('circle.pt').map(c => Number(c.dataset.t ?? -1)),
      values: all('circle.pt').map(c => Number(c.dataset.value)),
      drawn: all('circle.pt').filter(c => { const r = c.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length,
      anomalies: all('circle.anomaly').map(c => Number(c.dataset.run)),
      changes: all('line.change-point').map(l => Number(l.dataset.run)),
      regressions: all('rect.regression').map(r => r.dataset.runs),
      bands: all('rect.baseline-band').length,
      detections: all('line.detection').map(l => l.dataset.kind),
      limits: all('line.limit').filter(l => l.getBoundingClientRect().width > 0).map(l => Number(l.dataset.value)),
    };
  }
  const rows = (cls, key) => [...document.querySelectorAll('tr.' + cls)].map(r => r.dataset[key]);
  return {charts, labels: rows('label-row', 'label'), alerts: rows('alert-row', 'alert'),
          runs: rows('run-row', 'run'),
          flame_frames: document.querySelectorAll('figure.flamegraph svg rect').length, stdout: document.querySelector('pre.stdout')?.textContent ?? null};
})())js";

struct Seen {
  simdjson::dom::parser parser;
  simdjson::dom::element report;
};

// Loads `url` with page_check.mjs and checks what every page must be: no console or page
// error, no failed or external request, the screenshot written.
void load(const std::string& url, const std::string& shot, Seen& seen) {
  std::filesystem::create_directories("screenshots");
  const std::string png = (std::filesystem::current_path() / "screenshots" / shot).string();
  const auto r = run({NODE, PAGE_CHECK_MJS, url, "--eval", kProbe, "--screenshot", png});
  ASSERT_EQ(r.exit_code, 0) << url << ": " << r.out << r.err;
  seen.report = seen.parser.parse(r.out);
  for (const char* k : {"console_errors", "page_errors", "failed_requests", "external_requests"}) {
    EXPECT_EQ(seen.report[k].get_array().size(), 0u) << url << " " << k << ": " << r.out;
  }
  EXPECT_TRUE(std::filesystem::exists(png));
}

template <class T>
std::vector<T> list(simdjson::dom::element e) {
  std::vector<T> out;
  for (const auto x : e.get_array()) {
    if constexpr (std::is_same_v<T, std::int64_t>) {
      out.push_back(static_cast<std::int64_t>(x.get_double().value()));
    } else if constexpr (std::is_same_v<T, double>) {
      out.push_back(x.get_double());
    } else {
      out.emplace_back(std::string_view(x.get_string()));
    }
  }
  return out;
}

std::string joined(const std::vector<std::int64_t>& ids) {
  std::string s;
  for (const auto id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

// The seeded label's charts as the browser sees them.
void check_label_charts(simdjson::dom::element charts, const Seeded& s) {
  const auto wall = charts["wall"];
  EXPECT_EQ(list<std::int64_t>(wall["runs"]), s.ids);
  const auto values = list<double>(wall["values"]);
  ASSERT_EQ(values.size(), s.wall.size());
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(values[i], s.wall[i], 1e-9);
  EXPECT_EQ(wall["drawn"].get_int64().value(), static_cast<std::int64_t>(s.ids.size()));
  EXPECT_EQ(list<std::int64_t>(wall["changes"]), std::vector<std::int64_t>{s.change_run});
  EXPECT_EQ(list<std::string>(wall["regressions"]),
            std::vector<std::string>{joined({s.ids.end() - 5, s.ids.end()})});
  EXPECT_EQ(wall["bands"].get_int64().value(), 1);
  const auto rss = charts["max_rss"];
  EXPECT_EQ(list<std::int64_t>(rss["anomalies"]), s.spikes);
  const auto rss_values = list<double>(rss["values"]);
  ASSERT_EQ(rss_values.size(), s.max_rss.size());
  for (std::size_t i = 0; i < rss_values.size(); ++i) EXPECT_EQ(rss_values[i], s.max_rss[i]);
  for (const char* m :
       {"wall", "cpu_user", "cpu_sys", "max_rss", "tree_peak_rss", "read_bytes", "write_bytes"}) {
    EXPECT_EQ(charts[m]["runs"].get_array().size(), s.ids.size()) << m;
  }
}

TEST(Browser, ServedPagesHoldTheSeededPointsAndMarks) {
  TempDir dir;
  const Seeded s = seed_history(dir.path());
  Server server(s.db, dir.path());
  ASSERT_FALSE(server.url().empty());
  const std::string url = server.url();

  Seen index;
  load(url, "serve-index.png", index);
  EXPECT_EQ(list<std::string>(index.report["result"]["labels"]),
            (std::vector<std::string>{"real", "flaky", "seeded"}));

  Seen label;
  load(url + "label?name=seeded", "serve-label.png", label);
  check_label_charts(label.report["result"]["charts"], s);
  EXPECT_EQ(list<std::string>(label.report["result"]["alerts"]),
            std::vector<std::string>{std::to_string(s.alerts[0])});

  Seen runp;
  load(url + "run?id=" + std::to_string(s.sampled_run), "serve-run.png", runp);
  const auto cpu = runp.report["result"]["charts"]["cpu"];
  const auto values = list<double>(cpu["values"]);
  const auto times = list<double>(cpu["times"]);
  ASSERT_EQ(values.size(), 20u);
  for (std::size_t k = 0; k < values.size(); ++k) {
    EXPECT_DOUBLE_EQ(values[k], 50.0 + static_cast<double>(k));
    EXPECT_NEAR(times[k], 0.1 * static_cast<double>(k), 1e-9);
  }
  EXPECT_EQ(cpu["drawn"].get_int64().value(), 20);
  EXPECT_EQ(list<std::string>(runp.report["result"]["charts"]["rss"]["detections"]),
            std::vector<std::string>{"leak"});
  // The seeded limits, drawn: max RSS on the RSS chart, max CPU on the CPU time chart.
  EXPECT_EQ(list<double>(runp.report["result"]["charts"]["rss"]["limits"]),
            std::vector<double>{64.0 * (1 << 20)});
  EXPECT_EQ(list<double>(runp.report["result"]["charts"]["cpu_time"]["limits"]), std::vector<double>{4.0});
  EXPECT_TRUE(list<double>(cpu["limits"]).empty());
  EXPECT_EQ(std::string_view(runp.report["result"]["stdout"].get_string()),
            "line <1> & \"two\"\nsecond line\n");

  Seen alerts;
  load(url + "alerts", "serve-alerts.png", alerts);
  EXPECT_EQ(list<std::string>(alerts.report["result"]["alerts"]),
            (std::vector<std::string>{std::to_string(s.alerts[1]), std::to_string(s.alerts[0])}));
}

TEST(Browser, StaticReportOpenedFromAFile) {
  TempDir dir;
  const Seeded s = seed_history(dir.path());
  const std::string out = std::filesystem::absolute(dir / "report.html").string();
  std::vector<std::string> argv{kSpyglass, "report", "--label", "seeded", "--html", out, "--db", s.db};
#ifdef TRACED_EXE
  // With a flame graph of a real instrumented program's spans: its zoom script must load
  // without an error too.
  const auto traced = run({TRACED_EXE, dir / "spans", "20"}, dir.path());
  ASSERT_EQ(traced.exit_code, 0) << traced.err;
  for (const auto& e : std::filesystem::directory_iterator(dir / "spans")) {
    if (e.path().extension() == ".jsonl") argv.insert(argv.end(), {"--trace", e.path().string()});
  }
  ASSERT_EQ(argv.size(), 10u);
#endif
  const auto r = run(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Seen report;
  load("file://" + out, "report.png", report);
#ifdef TRACED_EXE
  EXPECT_GT(report.report["result"]["flame_frames"].get_int64().value(), 3);
#endif
  check_label_charts(report.report["result"]["charts"], s);
  EXPECT_EQ(report.report["result"]["runs"].get_array().size(), s.ids.size());
  const auto check = run({PYTHON3, CHECK_HTML_PY, out, "--db", s.db});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

}  // namespace
