// `spyglass serve` over HTTP and `spyglass report` as a file: every page answers, is
// well-formed (html.parser) and self-contained, charts the seeded runs with the seeded
// change point, regression and anomalies marked (and as `analyze --json` finds them), its
// baseline bands are NumPy's quartiles; bad input gets a clear error and changes nothing.

#include <httplib.h>
#include <simdjson.h>

#include <regex>
#include <set>

#include "seed.hpp"

namespace {

using namespace spyglass_test;

// The part of `html` from the chart of `metric` to its end.
std::string chart(const std::string& html, const std::string& metric) {
  const auto at = html.find("<figure class=\"chart\" data-metric=\"" + metric + "\"");
  if (at == std::string::npos) return {};
  return html.substr(at, html.find("</figure>", at) - at);
}

// The values of attribute `attr` of the elements whose class starts with `cls`.
std::vector<std::string> attrs(const std::string& html, const std::string& cls, const std::string& attr) {
  std::vector<std::string> out;
  const std::regex el("<[a-z]+ class=\"" + cls + "[^>]*");
  const std::regex a(" " + attr + "=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), el); it != std::sregex_iterator(); ++it) {
    std::smatch m;
    const std::string tag = it->str();
    if (std::regex_search(tag, m, a)) out.push_back(m[1]);
  }
  return out;
}

std::vector<std::int64_t> ids(const std::vector<std::string>& v) {
  std::vector<std::int64_t> out;
  for (const auto& s : v) out.push_back(std::stoll(s));
  return out;
}

// html.parser and NumPy on a page saved to `path`.
void check_html(const std::string& path, const std::string& db) {
  const auto r = run({PYTHON3, CHECK_HTML_PY, path, "--db", db});
  EXPECT_EQ(r.exit_code, 0) << path << ": " << r.out << r.err;
}

class Pages : public ::testing::Test {
 protected:
  TempDir dir;
  Seeded s = seed_history(dir.path());
};

TEST_F(Pages, ServeAnswersEveryPage) {
  // A label that needs escaping in HTML and in a URL, older than the others.
  const std::string odd = "a b&c/\xc3\xa9<x>?name=1";
  {
    auto h = mon::History::open(s.db);
    mon::RunRecord r;
    r.label = odd;
    r.command = "true";
    r.start_unix_ns = 1000000000;
    h.insert(r, {}, 0);
  }
  Server server(s.db, dir.path());
  ASSERT_FALSE(server.url().empty());
  const std::string url = server.url();
  const auto port = std::stoi(url.substr(url.rfind(':') + 1));
  httplib::Client c("127.0.0.1", port);
  const std::string run_path = "/run?id=" + std::to_string(s.sampled_run);
  int n = 0;
  for (const std::string path :
       {"/", "/label?name=seeded", "/label?name=real", "/label?name=flaky", "/alerts", run_path.c_str()}) {
    const auto res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200) << path;
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/html; charset=utf-8");
    EXPECT_NE(res->body.find("<link rel=\"icon\" href=\"data:,\">"), std::string::npos) << path;
    const std::string file = dir / ("page" + std::to_string(n++) + ".html");
    std::ofstream(file) << res->body;
    check_html(file, s.db);
  }

  // The index: every label, the latest status of each.
  const auto index = c.Get("/");
  EXPECT_EQ(attrs(index->body, "label-row", "data-label"),
            (std::vector<std::string>{"real", "flaky", "seeded", "a b&amp;c/\xc3\xa9&lt;x&gt;?name=1"}));
  const auto odd_page = c.Get("/label?name=a%20b%26c%2F%C3%A9%3Cx%3E%3Fname%3D1");
  ASSERT_TRUE(odd_page);
  EXPECT_EQ(odd_page->status, 200);
  EXPECT_NE(odd_page->body.find("<h1>Label a b&amp;c/\xc3\xa9&lt;x&gt;?name=1</h1>"), std::string::npos);
  EXPECT_NE(index->body.find("href=\"/label?name=a%20b%26c%2F%C3%A9%3Cx%3E%3Fname%3D1\""), std::string::npos);
  EXPECT_NE(index->body.find("data-status=\"failed\">exit 2<"), std::string::npos);

  // The label page: every seeded run charted, the marks where they were seeded.
  const auto label = c.Get("/label?name=seeded");
  const std::string wall = chart(label->body, "wall");
  EXPECT_EQ(ids(attrs(wall, "pt", "data-run")), s.ids);
  const auto values = attrs(wall, "pt", "data-value");
  ASSERT_EQ(values.size(), s.wall.size());
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(std::stod(values[i]), s.wall[i], 1e-9);
  EXPECT_EQ(ids(attrs(wall, "change-point", "data-run")), std::vector<std::int64_t>{s.change_run});
  const std::vector<std::int64_t> latest(s.ids.end() - 5, s.ids.end());
  const auto regression = attrs(wall, "regression", "data-runs");
  ASSERT_EQ(regression.size(), 1u);
  std::string want;
  for (const auto id : latest) want += (want.empty() ? "" : ",") + std::to_string(id);
  EXPECT_EQ(regression[0], want);
  EXPECT_EQ(attrs(wall, "baseline-band", "data-runs").size(), 1u);
  const std::string rss = chart(label->body, "max_rss");
  EXPECT_EQ(ids(attrs(rss, "pt anomaly", "data-run")), s.spikes);
  EXPECT_TRUE(attrs(rss, "regression", "data-runs").empty());

  // The same marks as `analyze --label --json` finds.
  const auto an = run({kSpyglass, "analyze", "--label", "seeded", "--json", "--db", s.db});
  ASSERT_EQ(an.exit_code, 0) << an.err;
  simdjson::dom::parser p;
  const simdjson::dom::element doc = p.parse(an.out);
  for (const char* metric : {"wall", "cpu_user", "max_rss", "tree_peak_rss", "write_bytes"}) {
    const std::string ch = chart(label->body, metric);
    std::vector<std::int64_t> cps, anomalies;
    for (const auto c2 : doc["metrics"][metric]["change_points"].get_array())
      cps.push_back(c2["run_id"].get_int64());
    for (const auto a : doc["metrics"][metric]["anomalies"].get_array())
      anomalies.push_back(a["run_id"].get_int64());
    EXPECT_EQ(ids(attrs(ch, "change-point", "data-run")), cps) << metric;
    EXPECT_EQ(ids(attrs(ch, "pt anomaly", "data-run")), anomalies) << metric;
    const bool regressed = doc["metrics"][metric]["regression"]["regressed"].get_bool();
    EXPECT_EQ(attrs(ch, "regression", "data-runs").size(), regressed ? 1u : 0u) << metric;
  }

  EXPECT_EQ(attrs(chart(c.Get("/label?name=real")->body, "wall"), "pt", "data-run").size(), 3u);

  // The run page: its samples, its detection, its limits, its tails (escaped), its alert.
  const auto runp = c.Get(run_path);
  EXPECT_EQ(attrs(chart(runp->body, "cpu"), "pt", "data-value").size(), 20u);
  EXPECT_EQ(attrs(chart(runp->body, "rss"), "detection", "data-kind"), std::vector<std::string>{"leak"});
  EXPECT_NE(
      runp->body.find("<pre class=\"stdout\">line &lt;1&gt; &amp; &quot;two&quot;\nsecond line\n</pre>"),
      std::string::npos);
  EXPECT_EQ(ids(attrs(runp->body, "alert-row", "data-alert")), std::vector<std::int64_t>{s.alerts[0]});
  // Its limits as seeded: in the facts, and as lines on the charts of the figures they bound
  // (--max-cpu bounds CPU time: the cumulative chart), above every point.
  EXPECT_EQ(attrs(runp->body, "limit-row", "data-limit"),
            (std::vector<std::string>{"timeout", "max-rss", "max-cpu", "kill"}));
  std::vector<double> limit_values;
  for (const auto& v : attrs(runp->body, "limit-row", "data-value")) limit_values.push_back(std::stod(v));
  EXPECT_EQ(limit_values, (std::vector<double>{30e9, 64 << 20, 4}));
  EXPECT_NE(runp->body.find("<th>memory limit on</th><td>pss</td>"), std::string::npos);
  EXPECT_NE(runp->body.find("<th>kill</th><td>graceful, grace 5.00 s</td>"), std::string::npos);
  EXPECT_TRUE(attrs(chart(runp->body, "cpu"), "limit", "data-value").empty());
  for (const auto& [metric, value] :
       std::vector<std::pair<std::string, std::string>>{{"rss", "67108864"}, {"cpu_time", "4"}}) {
    const std::string ch = chart(runp->body, metric);
    ASSERT_EQ(attrs(ch, "limit", "data-value"), std::vector<std::string>{value}) << metric;
    const double line_y = std::stod(attrs(ch, "limit", "y1").at(0));
    const auto ys = attrs(ch, "pt", "cy");
    ASSERT_EQ(ys.size(), 20u) << metric;
    for (const auto& y : ys) EXPECT_GT(std::stod(y), line_y) << metric;  // SVG y grows downwards
  }
  const auto older = c.Get("/run?id=" + std::to_string(s.ids.front()));
  EXPECT_EQ(attrs(older->body, "limit-row", "data-value").size(), 0u);
  EXPECT_NE(older->body.find("<th>kill</th><td>not recorded</td>"), std::string::npos);

  // The alert history, newest first.
  const auto alerts = c.Get("/alerts");
  EXPECT_EQ(ids(attrs(alerts->body, "alert-row", "data-alert")),
            (std::vector<std::int64_t>{s.alerts[1], s.alerts[0]}));
  // Each channel's outcome: its last attempt (the second, after a failed first).
  EXPECT_EQ(attrs(alerts->body, "delivery", "data-outcome"), std::vector<std::string>{"delivered"});
  EXPECT_EQ(attrs(alerts->body, "delivery", "data-attempts"), std::vector<std::string>{"2"});

  // Unknown paths 404, bad ids and missing parameters 400; only GET.
  for (const auto& [path, status] : std::vector<std::pair<std::string, int>>{{"/nope", 404},
                                                                             {"/label?name=nothing", 404},
                                                                             {"/run?id=999999", 404},
                                                                             {"/run?id=abc", 400},
                                                                             {"/run?id=0", 400},
                                                                             {"/run?id=12x", 400},
                                                                             {"/run", 400},
                                                                             {"/label", 400}}) {
    const auto res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, status) << path;
    EXPECT_NE(res->body.find("<link rel=\"icon\" href=\"data:,\">"), std::string::npos) << path;
  }
  const auto traversal = c.Get("/../../etc/passwd");
  ASSERT_TRUE(traversal);
  EXPECT_GE(traversal->status, 400);
  // Read-only: other methods get 405 and the methods there are, on any path; HEAD is served.
  for (const auto& res : {c.Post("/", "x", "text/plain"), c.Delete("/label?name=seeded"),
                          c.Put("/nope", "x", "text/plain"), c.Patch(run_path, "x", "text/plain")}) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 405);
    EXPECT_EQ(res->get_header_value("Allow"), "GET, HEAD");
    EXPECT_NE(res->body.find("read-only"), std::string::npos);
  }
  const auto head = c.Head("/label?name=seeded");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  const auto stopped = server.stop();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
}

TEST_F(Pages, ReportIsOneWellFormedSelfContainedFile) {
  const std::string out = dir / "report.html";
  const auto r = run({kSpyglass, "report", "--label", "seeded", "--html", out, "--db", s.db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  check_html(out, s.db);
  const std::string html = slurp(out);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("href=\"/"), std::string::npos);  // no link to a server page
  EXPECT_EQ(ids(attrs(chart(html, "wall"), "pt", "data-run")), s.ids);
  EXPECT_EQ(ids(attrs(html, "run-row", "data-run")).size(), s.ids.size());
  // The runs' limits, in the table of runs.
  EXPECT_NE(html.find("<td class=\"limits\">timeout 30.00 s, max RSS 64.0 MiB on pss, max CPU 4.00 s; kill "
                      "graceful, grace 5.00 s</td>"),
            std::string::npos);
}

// A trace line that is not a span stops the report, naming it, and leaves the file as it
// was; with --skip-bad it is said, counted and skipped, and the good spans are drawn.
TEST_F(Pages, ReportTraceWithABadLine) {
  const std::string trace = dir / "spans.jsonl", out = dir / "r.html";
  std::ofstream(trace)
      << R"({"ts":"2026-11-22T05:06:47.123Z","kind":"function","name":"only_good_span","dur_ns":5000,)"
         R"("trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"53995c3f42cd8ad8","thread":7,"status":"ok"})"
      << "\n{\"ts\": cut short\n";
  std::ofstream(out) << "kept";
  auto r = run({kSpyglass, "report", "--label", "seeded", "--html", out, "--trace", trace, "--db", s.db});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("spans.jsonl:2: not valid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(out), "kept");
  r = run({kSpyglass, "report", "--label", "seeded", "--html", out, "--trace", trace, "--skip-bad", "--db",
           s.db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("spyglass: skipped " + trace + ":2: not valid JSON"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("spyglass: 1 bad trace lines skipped\n"), std::string::npos) << r.err;
  check_html(out, s.db);
  const std::string html = slurp(out);
  const auto fig = html.find("<figure class=\"flamegraph\">");
  ASSERT_NE(fig, std::string::npos);
  EXPECT_NE(html.find("only_good_span", fig), std::string::npos);
}

TEST_F(Pages, BadInputGetsAClearErrorAndChangesNothing) {
  const std::string out = dir / "kept.html";
  std::ofstream(out) << "kept";
  auto r = run({kSpyglass, "report", "--label", "nothing", "--html", out, "--db", s.db});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no runs labelled 'nothing'"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(out), "kept");

  r = run({kSpyglass, "report", "--label", "seeded", "--html", out, "--db", dir / "missing.db"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.db"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "missing.db"));
  EXPECT_EQ(slurp(out), "kept");

  std::ofstream(dir / "notes.txt") << "not a database, long enough to be read as one by sqlite at all\n";
  r = run({kSpyglass, "serve", "--db", dir / "notes.txt", "--addr", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("notes.txt"), std::string::npos) << r.err;
  r = run({kSpyglass, "serve", "--db", dir / "missing.db", "--addr", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.db"), std::string::npos) << r.err;

  for (const std::string addr :
       {"bad", "127.0.0.1", ":9466", "127.0.0.1:70000", "127.0.0.1:-1", "127.0.0.1:x"}) {
    r = run({kSpyglass, "serve", "--db", s.db, "--addr", addr});
    EXPECT_EQ(r.exit_code, 125) << addr;
    EXPECT_NE(r.err.find("--addr"), std::string::npos) << r.err;
  }
  for (const std::vector<std::string>& args : {std::vector<std::string>{"report", "--html", out},
                                               {"report", "--label", "seeded"},
                                               {"report", "--label", "seeded", "--html", out, "--bogus"},
                                               {"serve", "extra"}}) {
    std::vector<std::string> argv{kSpyglass};
    argv.insert(argv.end(), args.begin(), args.end());
    r = run(argv);
    EXPECT_EQ(r.exit_code, 125) << args[0] << " " << r.err;
  }
  EXPECT_EQ(slurp(out), "kept");

  // Help and unknown options as for every other subcommand.
  for (const std::string sub : {"serve", "report"}) {
    const auto help = run({kSpyglass, sub, "--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_EQ(help.out.rfind("usage: spyglass " + sub, 0), 0u) << help.out;
    const auto bad = run({kSpyglass, sub, "--no-such-option"});
    EXPECT_EQ(bad.exit_code, 125);
    EXPECT_NE(bad.err.find("unknown option --no-such-option (spyglass " + sub + " --help)"),
              std::string::npos)
        << bad.err;
  }

  // An address in use: a clear error, exit 1.
  Server first(s.db, dir.path());
  ASSERT_FALSE(first.url().empty());
  const std::string port = first.url().substr(first.url().rfind(':') + 1, std::string::npos);
  r = run({kSpyglass, "serve", "--db", s.db, "--addr", "127.0.0.1:" + port.substr(0, port.size() - 1)});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot listen"), std::string::npos) << r.err;
}

}  // namespace
