// `spyglass trace` on the JSONL of a real instrumented program (tests/trace/traced_program):
// the Chrome trace is checked against the Trace Event Format's rules and, span by span,
// against the JSONL by Python's json module; folded stacks are recomputed in Python; the
// flame graph is read by xmllint. Plus bad input, standard streams and bounded memory.

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../monitor/support.hpp"

using spyglass_test::kSpyglass;
using spyglass_test::run;
using spyglass_test::slurp;
using spyglass_test::TempDir;

namespace {

const std::string kPython = PYTHON3;
const std::string kXmllint = XMLLINT;
const std::string kChecker = CHECK_TRACE_PY;
const std::string kProgram = WORKLOAD_EXE;
const std::string kNode = NODE;
const std::string kDevtoolsLoad = DEVTOOLS_LOAD_MJS;

// The JSONL files the program wrote into `dir`, sorted.
std::vector<std::string> jsonl_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".jsonl") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Runs the instrumented program twice (two processes, two files) and returns the files.
std::vector<std::string> record(const TempDir& dir, const std::string& requests = "40") {
  std::vector<std::string> files;
  for (const char* sub : {"a", "b"}) {
    const std::string out = dir / sub;
    const auto r = run({kProgram, out, requests}, dir.path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto f = jsonl_files(out);
    EXPECT_EQ(f.size(), 1U);
    files.insert(files.end(), f.begin(), f.end());
  }
  return files;
}

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

spyglass_test::Result check(const std::string& mode, const std::string& out,
                            const std::vector<std::string>& files, const std::string& dir) {
  return run(cat({kPython, kChecker, mode, out}, files), dir);
}

TEST(TraceCommand, ChromeTraceFollowsTheFormatAndHoldsEverySpan) {
  TempDir dir;
  const auto files = record(dir);
  const auto r = run(cat({kSpyglass, "trace", "-o", "trace.json"}, files), dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(" flows"), std::string::npos) << r.err;
  const auto c = check("events", dir / "trace.json", files, dir.path());
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  // The program fans out to worker threads: there are flows to check.
  EXPECT_EQ(c.out.find(" 0 flows"), std::string::npos) << c.out;
}

// Chrome DevTools' own trace engine (npm @paulirish/trace_engine) loads the file and puts
// every span into its per-thread trees, with the thread names.
TEST(TraceCommand, DevToolsTraceEngineLoadsEverySpan) {
  TempDir dir;
  const auto files = record(dir);
  const auto r = run(cat({kSpyglass, "trace", "-o", "trace.json"}, files), dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::size_t spans = 0;
  for (const auto& f : files) {
    const std::string text = slurp(f);
    spans += static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  }
  // "spyglass: N spans on T threads, ..."
  const std::size_t on = r.err.find(" spans on ");
  ASSERT_NE(on, std::string::npos) << r.err;
  const std::string threads = r.err.substr(on + 10, r.err.find(' ', on + 10) - on - 10);
  const auto node = run({kNode, kDevtoolsLoad, dir / "trace.json"}, dir.path());
  ASSERT_EQ(node.exit_code, 0) << node.out << node.err;
  EXPECT_EQ(node.out,
            "slices " + std::to_string(spans) + "\nthreads " + threads + "\nnamed " + threads + "\n")
      << node.err;
}

TEST(TraceCommand, ReadsStandardInputAndWritesStandardOutput) {
  TempDir dir;
  const auto files = record(dir, "10");
  const auto r =
      run({"sh", "-c", "\"$0\" trace --quiet - -o - < \"$1\" > out.json", kSpyglass, files[0]}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const auto c = check("events", dir / "out.json", {files[0]}, dir.path());
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
}

TEST(TraceCommand, FoldedStacksMatchTheSpanNesting) {
  TempDir dir;
  const auto files = record(dir);
  const auto r = run(cat({kSpyglass, "trace", "--folded", "--quiet"}, files), dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ofstream(dir / "out.folded") << r.out;
  const auto c = check("folded", dir / "out.folded", files, dir.path());
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  // A ';' in a name would split a frame: it is written as ':'.
  EXPECT_NE(r.out.find(";render:page "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("render;page"), std::string::npos);
  EXPECT_NE(r.out.find("/users/{id};void {anonymous}::load(int);SELECT name FROM users WHERE id = ? "),
            std::string::npos)
      << r.out;
  // Children on other threads are frames above the request that started them.
  EXPECT_NE(r.out.find("/users/{id};fanout;SELECT"), std::string::npos) << r.out;
}

TEST(TraceCommand, FlameGraphIsValidSelfContainedSvg) {
  TempDir dir;
  const auto files = record(dir);
  const auto folded = run(cat({kSpyglass, "trace", "--folded", "--quiet"}, files), dir.path());
  ASSERT_EQ(folded.exit_code, 0);
  std::uint64_t total = 0;
  std::size_t stacks = 0;
  for (std::size_t at = 0; at < folded.out.size();) {
    const std::size_t nl = folded.out.find('\n', at);
    const std::string line = folded.out.substr(at, nl - at);
    total += std::stoull(line.substr(line.rfind(' ') + 1));
    ++stacks;
    at = nl + 1;
  }
  ASSERT_GT(stacks, 5U);

  const auto r = run(
      cat({kSpyglass, "trace", "--flamegraph", "fg.svg", "--title", "a <title> & more"}, files), dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "trace.json")) << "--flamegraph alone writes only the SVG";
  const auto lint = run({kXmllint, "--noout", dir / "fg.svg"});
  EXPECT_EQ(lint.exit_code, 0) << lint.err;
  const auto xpath = [&](const std::string& expr) {
    std::string out = run({kXmllint, "--xpath", expr, dir / "fg.svg"}).out;
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  };
  // One frame per distinct prefix of a stack at least as many as leaves; the root holds the total.
  EXPECT_GE(std::stoul(xpath("count(//*[local-name()='g'][@class='f'])")), stacks / 2);
  EXPECT_NE(xpath("string((//*[local-name()='g'][@class='f'])[1]/*[local-name()='title'])")
                .find("all (" + std::to_string(total) + " ns, 100.00%)"),
            std::string::npos);
  EXPECT_EQ(xpath("string(//*[local-name()='svg']/*[local-name()='text'][1])"), "a <title> & more");
  // Nothing is fetched: no href or src anywhere, the script is inline.
  EXPECT_EQ(xpath("count(//@*[local-name()='href' or local-name()='src'])"), "0");
  EXPECT_NE(xpath("string(//*[local-name()='script'])").find("addEventListener('click'"), std::string::npos);
}

// A root span and its child, as the exporter writes them; then lines that are not spans.
constexpr const char* kGood1 =
    R"({"ts":"2026-11-22T05:06:47.123456789Z","kind":"db","name":"q","dur_ns":1000,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"53995c3f42cd8ad8","parent_span_id":"00f067aa0ba902b7","thread":7,"status":"ok","rows":3})";
constexpr const char* kGood2 =
    R"({"ts":"2026-11-22T05:06:47.123000000Z","kind":"request","name":"/r","dur_ns":999999,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","thread":8,"status":"error","http_status":500,"bytes_in":1,"bytes_out":2,"method":"GET"})";

std::string bad_file(const TempDir& dir) {
  const std::string path = dir / "bad.jsonl";
  std::ofstream(path)
      << kGood1 << "\n"
      << R"({"ts":"2026-11-22T05:06:47.1)"
      << "\n"  // 2: cut short
      << R"({"ts":"2026-11-22T05:06:47.123Z","kind":"db","name":"x"})"
      << "\n"  // 3: no dur_ns...
      << R"({"ts":"yesterday","kind":"db","name":"x","dur_ns":1,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"53995c3f42cd8ad9","thread":7,"status":"ok"})"
      << "\n"       // 4: bad time
      << "[1,2]\n"  // 5: not an object
      << "\n"       // empty: skipped
      << kGood2 << "\n";
  return path;
}

TEST(TraceCommand, BadLineStopsWithFileAndLineAndLeavesTheOutputAlone) {
  TempDir dir;
  const auto in = bad_file(dir);
  std::ofstream(dir / "trace.json") << "previous";
  const auto r = run({kSpyglass, "trace", in, "-o", "trace.json"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.jsonl:2: not valid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(dir / "trace.json"), "previous");
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 2U) << "no temporary file is left behind";
}

TEST(TraceCommand, SkipBadCountsAndKeepsTheRest) {
  TempDir dir;
  const auto in = bad_file(dir);
  const auto r = run({kSpyglass, "trace", "--skip-bad", in, "-o", "trace.json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("bad.jsonl:3: no \"dur_ns\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad.jsonl:4: \"ts\": not an RFC 3339 UTC time"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad.jsonl:5: not a JSON object"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 spans on 2 threads, 1 flows, 4 bad lines skipped"), std::string::npos) << r.err;
  // The good spans, exactly: Python reads them back.
  const auto py = run({kPython, "-c",
                       "import json,sys; d=json.load(open(sys.argv[1])); x=[e for e in d['traceEvents'] if "
                       "e['ph']=='X']; a={e['args']['span_id']: e for e in x}; "
                       "q=a['53995c3f42cd8ad8']; r=a['00f067aa0ba902b7']; "
                       "print(len(x), d['otherData']['bad_lines'], q['ts'], q['dur'], q['args']['rows'], "
                       "r['args']['http_status'], r['args']['method'], r['args']['status'], r['cat'], "
                       "d['otherData']['ts_origin'])",
                       dir / "trace.json"});
  EXPECT_EQ(py.out, "2 4 18407123456.789 1.0 3 500 GET error request 2026-11-22T00:00:00Z\n")
      << py.out << py.err;
}

// Times across a minute and a day, with 0 to 9 fractional digits, come out exact to the
// nanosecond (the checker reads them back with Python's datetime and Decimal).
TEST(TraceCommand, TimesAreExactAcrossMinutesAndDays) {
  TempDir dir;
  const std::string path = dir / "times.jsonl";
  const auto line = [](const char* ts, const char* span, const char* parent, unsigned dur) {
    char buf[512];
    std::snprintf(
        buf, sizeof buf,
        R"({"ts":"%s","kind":"function","name":"f","dur_ns":%u,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",)"
        R"("span_id":"%s",%s"thread":1,"status":"ok"})"
        "\n",
        ts, dur, span, parent);
    return std::string(buf);
  };
  std::ofstream(path) << line("2026-11-23T00:00:00.05Z", "0000000000000002",
                              R"("parent_span_id":"0000000000000001",)", 10000000)
                      << line("2026-11-22T23:59:59.9Z", "0000000000000001", "", 200000000)
                      << line("2026-11-23T00:00:59.999999999Z", "0000000000000003", "", 1)
                      << line("2026-11-23T00:01:00Z", "0000000000000004", "", 7)
                      << line("2026-11-23T00:01:00.000000001Z", "0000000000000005", "", 1);
  const auto r = run({kSpyglass, "trace", path, "-o", "trace.json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = check("events", dir / "trace.json", {path}, dir.path());
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
}

// A line longer than the reader holds (64 MiB) is one bad line, skipped whole.
TEST(TraceCommand, OverlongLineIsOneBadLine) {
  TempDir dir;
  {
    std::ofstream f(dir / "long.jsonl");
    f << kGood1 << "\n{\"name\":\"" << std::string((std::size_t{65} << 20), 'x') << "\"}\n" << kGood2 << "\n";
  }
  const auto r = run({kSpyglass, "trace", "--skip-bad", "long.jsonl", "-o", "trace.json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("long.jsonl:2: a line longer than 64 MiB"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 spans on 2 threads, 1 flows, 1 bad lines skipped"), std::string::npos) << r.err;
}

TEST(TraceCommand, ClearErrors) {
  TempDir dir;
  auto r = run({kSpyglass, "trace", "missing.jsonl"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.jsonl: No such file or directory"), std::string::npos) << r.err;

  std::ofstream(dir / "x.jsonl") << kGood1 << "\n";
  ASSERT_EQ(run({"gzip", "-k", dir / "x.jsonl"}).exit_code, 0);
  r = run({kSpyglass, "trace", "x.jsonl.gz"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("x.jsonl.gz: gzip-compressed; read it with: zcat x.jsonl.gz | spyglass trace -"),
            std::string::npos)
      << r.err;

  r = run({kSpyglass, "trace", "x.jsonl", "-o", "no/such/dir/trace.json"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no/such/dir/trace.json: cannot write"), std::string::npos) << r.err;

  EXPECT_EQ(run({kSpyglass, "trace"}, dir.path()).exit_code, 125);
  EXPECT_EQ(run({kSpyglass, "trace", "--bogus", "x.jsonl"}, dir.path()).exit_code, 125);
  EXPECT_EQ(run({kSpyglass, "trace", "--window", "0", "x.jsonl"}, dir.path()).exit_code, 125);
  r = run({kSpyglass, "trace", "--help"}, dir.path());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--flamegraph FILE"), std::string::npos);
}

// Peak RSS (KiB) of `spyglass trace` reading `lines` generated spans from a pipe: each
// request span has a child on another thread, so both the flow index and the folded
// stacks are exercised.
long peak_rss_kib(std::size_t lines) {
  int p[2];
  if (::pipe(p) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer keeps freed memory in quarantine (256 MB by default), which would
    // count as the converter's.
    std::string asan = std::getenv("ASAN_OPTIONS") != nullptr ? std::getenv("ASAN_OPTIONS") : "";
    asan += ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0";
    ::setenv("ASAN_OPTIONS", asan.c_str(), 1);
#endif
    ::dup2(p[0], 0);
    ::close(p[0]);
    ::close(p[1]);
    ::execl(kSpyglass.c_str(), kSpyglass.c_str(), "trace", "--quiet", "--window", "1000", "-", "-o",
            "/dev/null", "--flamegraph", "/dev/null", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(p[0]);
  std::string chunk;
  char line[512];
  for (std::size_t i = 0; i < lines; i += 2) {
    const unsigned long long s = i + 1;
    const unsigned sec = static_cast<unsigned>(i / 1000000) % 60;
    const unsigned ns = static_cast<unsigned>(i % 1000000) * 1000;
    // The child (thread 2) ends first and comes first, as the exporter writes them.
    std::snprintf(
        line, sizeof line,
        R"({"ts":"2026-11-22T05:00:%02u.%09uZ","kind":"function","name":"work","dur_ns":300,)"
        R"("trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"%016llx","parent_span_id":"%016llx",)"
        R"("thread":2,"status":"ok"})"
        "\n"
        R"({"ts":"2026-11-22T05:00:%02u.%09uZ","kind":"request","name":"/r","dur_ns":1000,)"
        R"("trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"%016llx","thread":1,"status":"ok",)"
        R"("http_status":200,"bytes_in":0,"bytes_out":0})"
        "\n",
        sec, ns + 100, s + 1, s, sec, ns, s);
    chunk += line;
    if (chunk.size() > 65536 || i + 2 >= lines) {
      if (::write(p[1], chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) break;
      chunk.clear();
    }
  }
  ::close(p[1]);
  int st = 0;
  rusage ru{};
  if (::wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
  return ru.ru_maxrss;
}

TEST(TraceCommand, MemoryStaysBoundedAsTheInputGrows) {
#if defined(__SANITIZE_ADDRESS__)
  constexpr std::size_t kBig = 200000;  // the sanitizer build is slower: 10 times is enough
#else
  constexpr std::size_t kBig = 400000;  // 20 times the spans, ~110 MB of JSONL
#endif
  const long small = peak_rss_kib(20000);
  const long big = peak_rss_kib(kBig);
  ASSERT_GT(small, 0);
  ASSERT_GT(big, 0);
  EXPECT_LT(big, small + 8 * 1024) << "peak RSS " << small << " KiB for 20k spans, " << big
                                   << " KiB for 400k";
}

}  // namespace
