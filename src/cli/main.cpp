// The spyglass command: run, history, show, detect, analyze, evaluate, gate, baseline, trace,
// serve, report.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "alerts.hpp"
#include "analyze.hpp"
#include "dashboard.hpp"
#include "evaluate.hpp"
#include "gate.hpp"
#include "report.hpp"
#include "serve.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/flamegraph.hpp"
#include "spyglass/json.hpp"
#include "spyglass/monitor/analytics.hpp"
#include "spyglass/monitor/history.hpp"
#include "spyglass/monitor/live.hpp"
#include "spyglass/monitor/run_metrics.hpp"
#include "spyglass/monitor/runner.hpp"
#include "spyglass/run_metric.hpp"
#include "trace.hpp"
#include "units.hpp"

namespace {

namespace mon = spyglass::monitor;
namespace cli = spyglass::cli;
namespace alerts = spyglass::alerts;

constexpr const char* kDefaultDb = "./spyglass-out/history.db";

// The history every subcommand uses without --db: SPYGLASS_DB when set (a file or a
// postgresql:// URL, so that CI machines share one), else the local file.
std::string default_db() {
  const char* env = std::getenv("SPYGLASS_DB");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(kDefaultDb);
}

// The exit status of every usage error (an unknown option or subcommand, a bad value, a
// missing argument), whichever the subcommand: 125 as in coreutils' timeout, env and nice,
// apart from what `run` passes on from the command (its code, 124, 126, 127, 128+N).
constexpr int kUsageError = 125;

constexpr const char* kRunUsage = R"(usage: spyglass run [options] -- COMMAND [ARGS...]

Runs COMMAND, samples its process tree and records the run.

options:
  --timeout DURATION     kill the process tree after DURATION (exit 124); 0: no timeout
  --max-rss SIZE         kill when the tree's memory exceeds SIZE (exit 124)
  --max-rss-source rss|pss|cgroup|kernel
                         the figure --max-rss limits: the sampled RSS sum (default),
                         the sampled PSS sum (samples smaps), the cgroup's peak, or a
                         hard limit the kernel enforces in the cgroup (OOM kill)
  --cgroup auto|off      auto (default): run the command in a cgroup of its own when
                         one can be created, for the kernel's exact tree figures
  --max-cpu SECONDS      kill when the tree's user+system CPU exceeds SECONDS (exit 124)
  --kill graceful|immediate
                         graceful: SIGTERM, then SIGKILL after --grace (default)
  --grace DURATION       default 5s; also how long a signal to spyglass waits for the tree
  --interval DURATION    sampling interval, 10ms or more (default 100ms)
  --label LABEL          groups runs of the same job (default: the command line)
  --db PATH|URL          history database (default $SPYGLASS_DB, else
                         ./spyglass-out/history.db; a missing directory is created), or a
                         postgresql://user@host:port/db URL shared by many machines
  --no-history           do not record the run
  --json FILE            write the run record and its samples to FILE (- for stdout)
  --smaps                also sample PSS/USS (costlier)
  --kill-leftovers       end processes the command leaves running after it exits
  --no-pty               do not run the command on a pseudo-terminal when ours is one
  --no-ptrace            do not trace the command for its own peak RSS (see README)
  --tail SIZE            keep the last SIZE of stdout and stderr (default 64K)
  --keep-runs N          keep the last N runs per label (default 1000)
  --keep-days DAYS       drop runs older than DAYS
  --detect on|off        live detection while sampling (default on): CPU and memory
                         spikes of the tree, and steady memory growth (a leak); the
                         findings are recorded with the run and listed in the summary
  --leak-window DURATION how long the tree's RSS must grow steadily to count as a leak
                         (default 60s)
  --quiet                no summary
  --alerts FILE          evaluate the alert rules of FILE (see spyglass alerts --help):
                         live ones while the command runs, the others when it ends;
                         delivery adds at most the file's delivery budget to the end
  --gate RULE            after recording the run, check RULE as `spyglass gate` does
                         (repeatable; see spyglass gate --help)
  --gate-junit FILE, --gate-tap FILE, --gate-markdown FILE
                         the gate's reports, as gate's --junit, --tap and --markdown;
                         always written, a failed command being a failing test case
  --gate-exit-code N     the exit status when a rule fails (1 to 255, default 123)
  --help                 this text

DURATION: a number with ms, s, m or h (plain numbers are seconds). SIZE: bytes, or with K, M, G.
Custom metrics: the command (or any process of its tree) appends lines `name value [unit]`
(unit: s, ms, us, ns, B, KiB, MiB, GiB, kB, MB, GB, or none) to the file named by
$SPYGLASS_METRICS_FILE; they are recorded with the run (bad lines: a warning, file kept).
Exit status: the command's; 128+N when signal N ended it; 124 when a limit killed it;
126/127 when it could not be started; 125 for a usage error or when spyglass itself failed.
With --gate: the command's failure first, with its status as above; when the command
exited 0, 123 (or --gate-exit-code) when a rule fails, 125 when the gate cannot be checked.
)";

constexpr const char* kHistoryUsage =
    R"(usage: spyglass history [--label L] [--limit N] [--since T] [--json] [--db PATH]

Lists recorded runs, newest first; with --since only those started at or after T (now,
now-DURATION such as now-7d, ISO 8601 or Unix seconds). Exit status: 0; 1 when the database cannot be read;
125 for a usage error.
)";

constexpr const char* kShowUsage = R"(usage: spyglass show RUN_ID [--json] [--db PATH]

Shows one run with a chart of its samples. Exit status: 0; 1 when the run or the
database is missing; 125 for a usage error.
)";

// Where detect and analyze read a series from; ends their usage texts.
constexpr const char* kSeriesSources = R"(sources:
  --csv FILE --time-column C --value-column V [--time-unit U]
                         a CSV file with a header line; timestamps ISO 8601 (also
                         without seconds, or basic: 20260101T0000Z), YYYY-MM-DD HH:MM:SS
                         (UTC unless a zone is given) or a Unix time; U is s, ms, us or
                         ns (default auto: by magnitude, >= 1e11 ms, >= 1e14 us,
                         >= 1e17 ns); rows out of time order are sorted (a warning)
  --prometheus URL --query Q --start T [--end T] [--step D]
                         GET URL/api/v1/query_range; Q must select one series; T is now,
                         now-DURATION (now-6h), ISO 8601 or Unix seconds (--end: now);
                         D a duration (default: about 250 points)
Exit status: 0; 1 when the series cannot be read (FILE:LINE, or the server's error,
says why) or the label has no runs; 125 for a usage error.
)";

constexpr const char* kDetectUsage =
    R"(usage: spyglass detect --csv FILE --time-column C --value-column V [--method M] [--offline]
                       [--threshold T] [--window N] [--json]
       spyglass detect --prometheus URL --query Q --start T [--end T] [--step D] [options]

Flags the anomalies of a time series (a CSV file, or a Prometheus range query), judging
each point by its past only.

options:
  --method ewma|mad|zscore|iqr
                         anomaly score (default ewma, the best of `spyglass evaluate`;
                         with --offline, mad)
  --offline              score against the whole series, not only each point's past
                         (mad, zscore or iqr)
  --threshold T          flag beyond T (defaults: ewma 4, mad 3.5, zscore 3, iqr 1.5)
  --window N             past points a rolling method keeps (default 60)
  --json                 {"anomalies": [...], "parameters": {...}} on stdout
  --help                 this text
)";

constexpr const char* kAnalyzeUsage =
    R"(usage: spyglass analyze --csv FILE --time-column C --value-column V [--method M] [--horizon N]
                        [--season N] [--limit X] [--json]
       spyglass analyze --prometheus URL --query Q --start T [--end T] [--step D] [options]
       spyglass analyze [--label L] [--metric M]... [--latest K] [--baseline N] [--runs N] [--since T]
                        [--method M] [--horizon N] [--limit M=V] [--json] [--db PATH]

Trend, anomalies, change points and forecast of a series (a CSV file or a Prometheus
range query), or of each metric of a label's run history (with regression of the latest runs against a baseline, and
correlations). Without --label, --csv or --prometheus: every label of the history, one
section each (--json: an object keyed by label; a label with too few runs has "error").

options:
  --method mad|zscore|iqr
                         anomaly score against the whole series (default mad: modified
                         z-score on the median and MAD; ewma is past-only: see detect)
  --threshold T          flag beyond T (defaults: ewma 4, mad 3.5, zscore 3, iqr 1.5)
  --horizon N            forecast steps (default 10)
  --season N             a cycle of N points: Holt-Winters, and change points searched
                         without the cycle (default: none, Holt)
  --limit X              a series: when the forecast reaches X (a number)
  --limit METRIC=VALUE   --label: when METRIC's forecast reaches VALUE, in its unit
                         (max_rss=2GiB, wall=1.5s; repeatable, one per metric); a bare
                         VALUE when exactly one --metric is given
  --metric M             --label: wall, cpu_user, cpu_sys, max_rss, tree_peak_rss,
                         read_bytes, write_bytes, or a custom metric the runs recorded
                         (repeatable; default all)
  --latest K             --label: the latest K runs against the baseline (default 5)
  --baseline N           --label: successful, non-anomalous runs before them, or up to
                         the run pinned with `spyglass baseline pin` (default 20)
  --runs N               --label: read the newest N runs (default 1000)
  --since T              --label: only runs started at or after T (now, now-DURATION
                         such as now-30d, ISO 8601 or Unix seconds)
  --db PATH              the history database (default ./spyglass-out/history.db)
  --json                 a JSON report on stdout
  --help                 this text
)";

constexpr const char* kEvaluateUsage =
    R"(usage: spyglass evaluate [--method M]... [--series N] [--length N] [--seed N] [--json]

Scores the anomaly detectors on labelled synthetic series (spikes, level shifts, trend
and variance changes, seasonality, missing points): precision, recall and F1 per method;
then the change-point detector on level and variance changes and the growth detector on
the trend change.

options:
  --method M             ewma, mad, zscore or iqr (repeatable; default all)
  --series N             series per kind of anomaly (default 20)
  --length N             points per series (default 1000, at least 500)
  --seed N               seed of the generated series (default 1)
  --json                 the table as JSON on stdout
  --help                 this text
Exit status: 0; 125 for a usage error.
)";

constexpr const char* kGateUsage =
    R"(usage: spyglass gate --label L --rule RULE... [--latest K] [--baseline N] [--runs N]
                     [--recent N] [--junit FILE] [--tap FILE] [--markdown FILE] [--db PATH]

Checks rules on the latest run of a label and on its history, for CI.

rules (--rule, repeatable):
  METRIC OP VALUE        the latest run's METRIC against VALUE (skipped when that run
                         failed, which fails the gate); OP is <, <=, > or >=;
                         METRIC is wall, cpu_user, cpu_sys (VALUE a duration: 2s, 150ms)
                         or max_rss, tree_peak_rss, read_bytes, write_bytes (VALUE a size:
                         512MiB, 64K), or a custom metric the runs recorded (VALUE a
                         number, or in its unit); e.g. 'wall < 2s', 'items_per_s > 1000'
  no-regression[:M,...]  the latest K successful runs are not significantly worse than
                         the baseline (Mann-Whitney p < 0.01 and median +5% or more), as
                         `analyze --label` tests it; default: every metric
  no-change-point[:M,...]
                         no significant change point starts in the newest --recent runs
options:
  --latest K             runs compared with the baseline (default 5)
  --baseline N           successful, non-anomalous runs before them, or up to the run
                         pinned with `spyglass baseline pin` (default 20)
  --runs N               read the newest N runs (default 1000)
  --recent N             no-change-point: how many of the newest runs count (default 10)
  --junit FILE           write a JUnit XML report
  --tap FILE             write a TAP version 14 report
  --markdown FILE        append a Markdown summary (e.g. "$GITHUB_STEP_SUMMARY")
  --db PATH              history database (default ./spyglass-out/history.db)
  --help                 this text
A rule that cannot be checked yet (too few runs) is skipped, not failed. When the latest
run failed or was killed, the gate fails ("latest run succeeded") and threshold rules are
skipped.
Exit status: 0 when every rule passes; 3 when a rule fails; 1 when the history cannot be
read, the label has no runs or a report cannot be written; 125 for a usage error (a bad
rule included).
)";

constexpr const char* kBaselineUsage = R"(usage: spyglass baseline pin RUN_ID [--db PATH]
       spyglass baseline unpin --label L [--db PATH]
       spyglass baseline show [--label L] [--json] [--db PATH]

Pins a successful run as the baseline of its label: `gate` and `analyze --label` then
compare the latest runs with it and the runs before it, instead of the runs just before
them. One pin per label; pinning another run of the label replaces it. Retention keeps a
pinned run.
Exit status: 0; 1 when the run does not exist or did not succeed, the label has no pin
to remove, or the database cannot be read or written; 125 for a usage error.
)";

constexpr const char* kTraceUsage =
    R"(usage: spyglass trace [options] FILE.jsonl...

Converts the spans the JSONL exporter wrote to the Chrome Trace Event Format (for Perfetto
UI and chrome://tracing), to folded stacks, or to a flame graph. FILE - reads standard
input (e.g. zcat spyglass-out/*.jsonl.gz | spyglass trace -). Each FILE is shown as a
process of its own; the files are read together, in the order their spans ended.

options:
  -o, --output FILE      where the output goes (- for stdout); default: trace.json for the
                         trace, stdout for --folded
  --folded               folded stacks ("root;child;leaf SELF_NS" lines) instead of the trace
  --flamegraph FILE      also draw the folded stacks as a flame graph (SVG, click to zoom);
                         alone, without -o or --folded, only the SVG is written
  --title TEXT           the flame graph's title
  --skip-bad             skip lines that are not spans (each reported, then counted)
                         instead of stopping at the first one
  --window N             spans remembered to link children to parents (default 262144):
                         memory stays bounded whatever the input size
  --quiet                no summary on stderr
  --help                 this text
Exit status: 0; 1 when an input cannot be read, a line is not a span (without --skip-bad)
or an output cannot be written (an output file is then left as it was); 125 for a usage
error.
)";

constexpr const char* kServeUsage =
    R"(usage: spyglass serve [--db PATH] [--addr HOST:PORT] [--runs N] [--latest K] [--baseline N]

Serves the history's pages: every label with its latest status and trend; per label,
charts of wall time, CPU, peak RSS and I/O over the runs with anomalies, change points,
the baseline band and regressions marked; per run, CPU, RSS and I/O over time, limits,
live detections and output tails; the alert history. Charts are inline SVG: no script
library, nothing from the network. Prints "serving http://HOST:PORT/" once it listens;
SIGINT or SIGTERM stops it.

options:
  --addr HOST:PORT       where to listen (default 127.0.0.1:9466; port 0: any free port)
  --runs N               newest runs of a label charted (default 1000)
  --latest K, --baseline N
                         as for analyze --label (defaults 5 and 20)
  --db PATH|URL          history database (default $SPYGLASS_DB, else
                         ./spyglass-out/history.db)
  --help                 this text
Exit status: 0 after SIGINT or SIGTERM; 1 when the database cannot be read or the
address cannot be bound; 125 for a usage error.
)";

constexpr const char* kReportUsage =
    R"(usage: spyglass report --label L --html FILE [--trace FILE.jsonl]... [--runs N] [--db PATH]

Writes the page of label L (its charts, alerts and runs) as one self-contained HTML file:
inline CSS and SVG, nothing loaded from the network, fit to attach to a CI job.

options:
  --html FILE            the report (- for stdout); written whole or not at all
  --trace FILE.jsonl     spans of the JSONL exporter to add as a flame graph (repeatable)
  --skip-bad             skip trace lines that are not spans (each reported, then counted)
                         instead of stopping at the first one, as trace --skip-bad
  --runs N               newest runs charted (default 1000)
  --latest K, --baseline N
                         as for analyze --label (defaults 5 and 20)
  --db PATH|URL          history database (default $SPYGLASS_DB, else
                         ./spyglass-out/history.db)
  --help                 this text
Exit status: 0; 1 when the database or a trace cannot be read, a trace line is not a span
(without --skip-bad), the label has no runs or FILE cannot be written; 125 for a usage error.
)";

constexpr const char* kAlertsUsage =
    R"(usage: spyglass alerts [--label L] [--since T] [--limit N] [--json] [--db PATH]
       spyglass alerts check FILE

Lists the alerts `spyglass run --alerts FILE` raised, newest first, with each channel's
delivery outcome; with --since only those raised at or after T (now, now-DURATION, ISO
8601 or Unix seconds). `check` validates a rules file (and that the environment variables
it names are set) without sending anything.
Exit status: 0; 1 when the database cannot be read or the rules file is invalid (said on
stderr with its line and field); 125 for a usage error.
)";

constexpr const char* kUsage = R"(usage:
  spyglass run [options] -- COMMAND [ARGS...]
  spyglass history [--label L] [--limit N] [--json] [--db PATH]
  spyglass show RUN_ID [--json] [--db PATH]
  spyglass detect --csv FILE --time-column C --value-column V [options]
  spyglass detect --prometheus URL --query Q --start T [options]
  spyglass analyze --csv FILE --time-column C --value-column V [options]
  spyglass analyze --prometheus URL --query Q --start T [options]
  spyglass analyze --label L [options]
  spyglass evaluate [options]
  spyglass gate --label L --rule RULE... [options]
  spyglass baseline pin RUN_ID | unpin --label L | show [--label L]
  spyglass alerts [--label L] [--since T] [--json] | alerts check FILE
  spyglass trace [-o trace.json] [--folded] [--flamegraph out.svg] FILE.jsonl...
  spyglass serve [--db PATH] [--addr 127.0.0.1:9466]
  spyglass report --label L --html out.html [--trace FILE.jsonl]
  spyglass SUBCOMMAND --help

A usage error exits with 125, whichever the subcommand. Every --db takes a file or a
postgresql://user@host:port/db URL; without --db, $SPYGLASS_DB, else ./spyglass-out/history.db.
)";

// `--help` or `-h`: the subcommand's usage goes to stdout.
bool is_help(std::string_view opt) { return opt == "--help" || opt == "-h"; }

struct UsageError {
  std::string message;
};

// Exclusive upper bounds of what a double may hold before its conversion: 2^63 ns (an
// int64_t count, about 292 years) and 2^64 bytes. Both are exact doubles.
constexpr double kMaxNs = 9223372036854775808.0;
constexpr double kMaxBytes = 18446744073709551616.0;
constexpr double kMaxDays = kMaxNs / 86400e9;  // what RetentionPolicy can express: ~106751 days

using cli::parse_number;

std::chrono::nanoseconds parse_duration(std::string_view opt, std::string_view s) {
  const auto v = cli::parse_seconds(s);
  if (!v) throw UsageError{std::string(opt) + ": not a duration: '" + std::string(s) + "'"};
  const double ns = *v * 1e9;
  if (!(ns < kMaxNs))
    throw UsageError{std::string(opt) + ": out of range: '" + std::string(s) + "' (at most 292 years)"};
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

std::uint64_t parse_size(std::string_view opt, std::string_view s) {
  const auto bytes = cli::parse_bytes(s);
  if (!bytes) throw UsageError{std::string(opt) + ": not a size: '" + std::string(s) + "'"};
  if (!(*bytes < kMaxBytes))
    throw UsageError{std::string(opt) + ": out of range: '" + std::string(s) + "' (at most 16 EiB)"};
  return static_cast<std::uint64_t>(*bytes);
}

// The value of an option that takes one of a few words.
template <class T>
T parse_choice(std::string_view opt, std::string_view s,
               std::initializer_list<std::pair<std::string_view, T>> choices) {
  std::string names;
  std::size_t i = 0;
  for (const auto& [name, value] : choices) {
    if (s == name) return value;
    if (i != 0) names += i + 1 == choices.size() ? " or " : ", ";
    names += name;
    ++i;
  }
  throw UsageError{std::string(opt) + ": expected " + names + ", got '" + std::string(s) + "'"};
}

std::int64_t parse_int(std::string_view opt, std::string_view s, std::int64_t min) {
  std::int64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v < min) {
    throw UsageError{std::string(opt) + ": not a valid number: '" + std::string(s) + "'"};
  }
  return v;
}

// Unix seconds now, to the millisecond.
double unix_now() {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count()) /
         1000.0;
}

// A time option's value as Unix seconds: now, now-DURATION, ISO 8601 or Unix seconds.
double time_option(std::string_view opt, const std::string& v, double now) {
  const auto t = cli::parse_time_argument(v, now);
  if (!t)
    throw UsageError{std::string(opt) + ": not a time: '" + v +
                     "' (now, now-DURATION, ISO 8601 or Unix seconds)"};
  return *t;
}

// --since T: the runs started at or after T, as Unix-epoch ns.
std::int64_t since_option(std::string_view opt, std::string_view v) {
  return static_cast<std::int64_t>(std::llround(time_option(opt, std::string(v), unix_now()) * 1e9));
}

// Walks "--name value" and "--name=value" options up to the first non-option or "--".
class Args {
 public:
  Args(int argc, char** argv, int first) : argv_(argv + first, argv + argc) {}
  bool done() const { return i_ >= argv_.size(); }
  std::string_view peek() const { return argv_[i_]; }
  bool is_option() const { return !done() && argv_[i_].size() > 1 && argv_[i_][0] == '-'; }
  // Returns the option name; its inline value, if any, is kept for value().
  std::string_view next_option() {
    std::string_view a = argv_[i_++];
    inline_.reset();
    if (const auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string_view::npos) {
      inline_ = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    return a;
  }
  std::string_view value(std::string_view opt) {
    if (inline_) return *std::exchange(inline_, std::nullopt);
    if (done()) throw UsageError{std::string(opt) + " needs a value"};
    return argv_[i_++];
  }
  std::string_view positional() { return argv_[i_++]; }
  std::vector<std::string> rest() {
    std::vector<std::string> out(argv_.begin() + static_cast<std::ptrdiff_t>(i_), argv_.end());
    i_ = argv_.size();
    return out;
  }

 private:
  std::vector<std::string_view> argv_;
  std::size_t i_ = 0;
  std::optional<std::string_view> inline_;
};

std::string default_label(const std::vector<std::string>& argv) {
  std::string label = std::filesystem::path(argv[0]).filename().string();
  for (std::size_t i = 1; i < argv.size(); ++i) label += " " + argv[i];
  if (label.size() > 100) label.resize(100);
  return label;
}

// Opens (creating) the history; a missing directory is created and said so, once: the
// next run finds it.
mon::History open_history(const std::string& path) {
  if (path.starts_with("postgresql://") || path.starts_with("postgres://")) return mon::History::open(path);
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    if (std::filesystem::create_directories(parent, ec)) {
      std::fprintf(stderr, "spyglass: created directory %s for the history\n", parent.string().c_str());
    }
  }
  return mon::History::open(path);
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  return static_cast<bool>(f);
}

// A private, empty file for the run's custom metrics, its path set in the environment the
// command inherits; "" (with a warning) when none can be made.
std::string make_metrics_file() {
  // $TMPDIR when set; else in memory (/dev/shm) when it can be: creating and removing a
  // file on a disk dirties its directory's block, block output charged to the monitor
  // beside the run it measures.
  const char* tmpdir = std::getenv("TMPDIR");
  const bool chosen = tmpdir != nullptr && *tmpdir != '\0';
  int fd = -1;
  std::string path;
  for (const char* dir : {chosen ? tmpdir : "/dev/shm", chosen ? tmpdir : "/tmp"}) {
    path = std::string(dir) + "/spyglass-metrics-XXXXXX";
    fd = ::mkstemp(path.data());
    if (fd >= 0) break;
  }
  if (fd < 0) {
    std::fprintf(stderr, "spyglass: warning: no metrics file for the run (%s): %s\n", path.c_str(),
                 std::strerror(errno));
    ::unsetenv(spyglass::kRunMetricsEnv);
    return {};
  }
  ::close(fd);
  ::setenv(spyglass::kRunMetricsEnv, path.c_str(), 1);
  return path;
}

// The metrics the command appended to `path` into `r`. Bad lines are reported and the file
// kept (nothing is lost); otherwise it is removed.
void collect_run_metrics(const std::string& path, mon::RunRecord& r) {
  if (path.empty()) return;
  const auto names = cli::history_metric_names();
  auto read = mon::read_run_metrics(path, names);
  r.metrics = std::move(read.metrics);
  for (const auto& w : read.warnings) {
    std::fprintf(stderr, "spyglass: warning: metrics file %s: %s\n", path.c_str(), w.c_str());
  }
  if (read.warnings.empty()) {
    ::unlink(path.c_str());
  } else {
    std::fprintf(stderr, "spyglass: warning: metrics file %s is kept; %zu metric(s) were recorded from it\n",
                 path.c_str(), r.metrics.size());
  }
}

int cmd_run(Args& a) {
  mon::RunOptions o;
  std::string db = default_db(), json_path;
  bool quiet = false, record = true, rss_source_given = false, detect = true;
  spyglass::analytics::LiveDetector::Options live_options;
  cli::GateOptions gate;
  cli::GateOutputs gate_files;
  int gate_exit_code = cli::kRunGateFailed;
  std::optional<alerts::RuleSet> alert_rules;
  mon::RetentionPolicy keep;
  keep.keep_last_per_label = 1000;
  while (!a.done()) {
    if (a.peek() == "--") {
      a.positional();
      break;
    }
    if (!a.is_option()) break;
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kRunUsage, stdout);
      return 0;
    }
    if (opt == "--timeout") {
      o.timeout = parse_duration(opt, a.value(opt));
      if (o.timeout->count() == 0) o.timeout.reset();  // as coreutils' timeout: no limit
    } else if (opt == "--max-rss") {
      o.max_rss_bytes = parse_size(opt, a.value(opt));
      if (*o.max_rss_bytes == 0)
        throw UsageError{"--max-rss: must be more than 0 (leave it out for no limit)"};
    } else if (opt == "--max-rss-source") {
      using S = mon::RssLimitSource;
      o.max_rss_source =
          parse_choice<S>(opt, a.value(opt),
                          {{"rss", S::rss}, {"pss", S::pss}, {"cgroup", S::cgroup}, {"kernel", S::kernel}});
      rss_source_given = true;
    } else if (opt == "--cgroup") {
      o.cgroup = parse_choice<mon::CgroupMode>(
          opt, a.value(opt), {{"auto", mon::CgroupMode::automatic}, {"off", mon::CgroupMode::off}});
    } else if (opt == "--max-cpu") {
      std::string_view rest;
      const std::string_view v = a.value(opt);
      const auto n = parse_number(v, rest);
      if (!n || !rest.empty())
        throw UsageError{"--max-cpu: not a number of seconds: '" + std::string(v) + "'"};
      o.max_cpu_seconds = *n;
    } else if (opt == "--kill") {
      o.kill = parse_choice<mon::KillStrategy>(
          opt, a.value(opt),
          {{"graceful", mon::KillStrategy::graceful}, {"immediate", mon::KillStrategy::immediate}});
    } else if (opt == "--grace") {
      o.grace = parse_duration(opt, a.value(opt));
    } else if (opt == "--interval") {
      o.interval = parse_duration(opt, a.value(opt));
      if (o.interval < std::chrono::milliseconds(10)) throw UsageError{"--interval: must be at least 10ms"};
    } else if (opt == "--label") {
      o.label = std::string(a.value(opt));
    } else if (opt == "--db") {
      db = std::string(a.value(opt));
    } else if (opt == "--no-history") {
      record = false;
    } else if (opt == "--json") {
      json_path = std::string(a.value(opt));
    } else if (opt == "--smaps") {
      o.smaps = true;
    } else if (opt == "--kill-leftovers") {
      o.kill_leftovers = true;
    } else if (opt == "--no-pty") {
      o.terminal = false;
    } else if (opt == "--no-ptrace") {
      o.exact_peak = false;
    } else if (opt == "--tail") {
      o.tail_bytes = parse_size(opt, a.value(opt));
    } else if (opt == "--keep-runs") {
      keep.keep_last_per_label = static_cast<std::size_t>(parse_int(opt, a.value(opt), 1));
    } else if (opt == "--keep-days") {
      std::string_view rest;
      const std::string_view v = a.value(opt);
      const auto n = parse_number(v, rest);
      if (!n || !rest.empty() || *n <= 0)
        throw UsageError{"--keep-days: not a number of days: '" + std::string(v) + "'"};
      if (!(*n < kMaxDays)) {
        throw UsageError{"--keep-days: out of range: '" + std::string(v) + "' (at most " +
                         std::to_string(static_cast<long>(kMaxDays)) + " days)"};
      }
      keep.max_age_days = *n;
    } else if (opt == "--detect") {
      detect = parse_choice<bool>(opt, a.value(opt), {{"on", true}, {"off", false}});
    } else if (opt == "--leak-window") {
      const auto w = parse_duration(opt, a.value(opt));
      if (w < std::chrono::seconds(1)) throw UsageError{"--leak-window: must be at least 1s"};
      live_options.growth.window = std::chrono::duration<double>(w).count();
    } else if (opt == "--quiet" || opt == "-q") {
      quiet = true;
    } else if (opt == "--gate") {
      try {
        gate.rules.push_back(cli::parse_gate_rule(a.value(opt)));
      } catch (const cli::InputError& e) {
        throw UsageError{std::string("--gate: ") + e.what()};
      }
    } else if (opt == "--alerts") {
      try {
        alert_rules = alerts::load_rules(std::string(a.value(opt)));
      } catch (const alerts::RuleError& e) {
        throw UsageError{std::string("--alerts: ") + e.what()};
      }
    } else if (opt == "--gate-junit") {
      gate_files.junit = std::string(a.value(opt));
    } else if (opt == "--gate-tap") {
      gate_files.tap = std::string(a.value(opt));
    } else if (opt == "--gate-markdown") {
      gate_files.markdown = std::string(a.value(opt));
    } else if (opt == "--gate-exit-code") {
      const std::string_view v = a.value(opt);
      gate_exit_code = static_cast<int>(parse_int(opt, v, 1));
      if (gate_exit_code > 255) throw UsageError{"--gate-exit-code: 1 to 255, not '" + std::string(v) + "'"};
    } else {
      throw UsageError{"run: unknown option " + std::string(opt)};
    }
  }
  o.argv = a.rest();
  if (o.argv.empty()) throw UsageError{"run: no command given (spyglass run [options] -- COMMAND [ARGS...])"};
  if (o.label.empty()) o.label = default_label(o.argv);
  const bool gate_asked = !gate.rules.empty();
  if (!gate_asked && (!gate_files.junit.empty() || !gate_files.tap.empty() || !gate_files.markdown.empty()))
    throw UsageError{"run: --gate-junit, --gate-tap and --gate-markdown need --gate"};
  if (!gate.rules.empty() && !record) throw UsageError{"run: --gate needs the history (no --no-history)"};
  if (rss_source_given && !o.max_rss_bytes) throw UsageError{"run: --max-rss-source needs --max-rss"};

  // A database that is not ours stops us before the command runs: better than running
  // it and losing the record. Other failures (a full disk) only lose the record.
  // A PostgreSQL server that cannot be reached now is tried again at the end of the run.
  std::optional<mon::History> history;
  const bool shared = db.starts_with("postgresql://") || db.starts_with("postgres://");
  if (record) {
    try {
      history.emplace(open_history(db));
    } catch (const mon::HistoryError& e) {
      const auto k = e.kind();
      if (k == mon::HistoryErrorKind::not_a_database || k == mon::HistoryErrorKind::foreign ||
          k == mon::HistoryErrorKind::corrupt || k == mon::HistoryErrorKind::newer_schema ||
          k == mon::HistoryErrorKind::bad_url) {
        std::fprintf(stderr, "spyglass: error: %s\n", e.what());
        return 125;
      }
      std::fprintf(stderr,
                   shared ? "spyglass: warning: %s (trying again at the end of the run)\n"
                          : "spyglass: warning: the run will not be recorded: %s\n",
                   e.what());
    }
  }

  // Before any thread starts (alert delivery): setenv() is not safe beside a concurrent getenv().
  const std::string metrics_file = make_metrics_file();

  // Live detection runs on the runner's thread, on each sample as it is taken; times are
  // seconds since just before the spawn.
  std::optional<alerts::RunAlerts> run_alerts;
  if (alert_rules) run_alerts.emplace(*alert_rules, o.label, history ? &*history : nullptr);
  std::optional<spyglass::analytics::LiveDetector> live;
  const std::uint64_t live_t0 = spyglass::clock::monotonic_ns();
  if (detect) {
    live.emplace(live_options);
    o.on_sample = [&live, &run_alerts, live_t0](const mon::Sample& s) {
      const double t = static_cast<double>(s.t_ns - std::min(s.t_ns, live_t0)) / 1e9;
      const std::size_t began =
          live->update(t, s.cpu_user_pct + s.cpu_sys_pct, static_cast<double>(s.rss_bytes));
      if (began != 0 && run_alerts) {
        // The last `began` findings have just started, while the run goes on: their
        // alerts are queued for the delivery thread, so sampling never waits on them.
        const auto& f = live->findings();
        for (std::size_t i = f.size() - began; i < f.size(); ++i) run_alerts->on_live(f[i]);
      }
    };
  }

  mon::RunResult res = mon::run(o);
  mon::RunRecord& r = res.record;
  collect_run_metrics(metrics_file, r);
  if (live) {
    for (const auto& f : live->findings()) {
      const double at_ns = static_cast<double>(live_t0) + f.t * 1e9 - static_cast<double>(res.start_mono_ns);
      r.detections.push_back(
          {static_cast<std::int64_t>(std::max(0.0, at_ns)), f.metric, f.kind, f.value, f.score, f.detector});
    }
    if (live->dropped() != 0) {
      std::fprintf(stderr, "spyglass: warning: %zu more detections were not kept\n", live->dropped());
    }
  }
  for (const std::string& w : res.warnings) std::fprintf(stderr, "spyglass: warning: %s\n", w.c_str());
  if (!r.error.empty()) {
    std::fprintf(stderr, "spyglass: cannot run '%s': %s\n", r.command.c_str(), r.error.c_str());
  }

  const auto run_json = [&] {
    std::string out;
    out += "{\"run\":";
    mon::write_json(r, out);
    out += ",\"samples\":[";
    for (std::size_t i = 0; i < res.samples.size(); ++i) {
      if (i != 0) out += ',';
      mon::write_json(res.samples[i], res.start_mono_ns, out);
    }
    out += "]}\n";
    return out;
  };

  std::vector<mon::RunRecord> baseline;
  std::string lost;  // why a shared history did not get the run
  if (history) {
    try {
      history->insert(r, res.samples, res.start_mono_ns);
    } catch (const mon::HistoryError& e) {
      if (shared) {
        lost = e.what();
      } else {
        std::fprintf(stderr, "spyglass: warning: run not saved to history: %s\n", e.what());
      }
    }
  }
  if (record && shared && r.id == 0) {
    // The server was down or the connection dropped: one more try on a new connection,
    // unless the first insert did commit and only its reply was lost.
    try {
      history.reset();
      history.emplace(open_history(db));
      if (const auto id = history->recorded_id(r)) {
        r.id = *id;
      } else {
        history->insert(r, res.samples, res.start_mono_ns);
      }
    } catch (const mon::HistoryError& e) {
      lost = e.what();
      history.reset();
    }
    if (r.id == 0) {
      // The run is kept as `--json` writes it, and the loss is said where CI logs show it.
      const std::string dir = "spyglass-out/unsaved";
      const std::string file =
          dir + "/run-" + std::to_string(r.start_unix_ns) + "-" + std::to_string(::getpid()) + ".json";
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      if (write_file(file, run_json())) {
        std::fprintf(
            stderr,
            "spyglass: error: the run was not recorded in the shared history: %s; its record is in %s\n",
            lost.c_str(), file.c_str());
      } else {
        std::fprintf(stderr,
                     "spyglass: error: the run was not recorded in the shared history: %s; nor could it be "
                     "kept in %s (%s), so here it is:\n%s",
                     lost.c_str(), file.c_str(), std::strerror(errno), run_json().c_str());
      }
    }
  }
  if (history && r.id != 0) {
    try {
      if (r.id != 0) baseline = history->baseline(r.label, r.id, 20);
      history->apply_retention(keep);
    } catch (const mon::HistoryError& e) {
      std::fprintf(stderr, "spyglass: warning: %s\n", e.what());
    }
  }

  if (!json_path.empty()) {
    const std::string out = run_json();
    if (json_path == "-") {
      std::fputs(out.c_str(), stdout);
      std::fflush(stdout);
    } else if (!write_file(json_path, out)) {
      std::fprintf(stderr, "spyglass: warning: cannot write %s: %s\n", json_path.c_str(),
                   std::strerror(errno));
    }
  }
  if (!quiet) std::fputs(cli::run_summary(r, baseline, res.leftover_pids).c_str(), stderr);
  if (run_alerts) {
    // The label's runs, newest first, starting with this one when it was recorded.
    std::vector<mon::RunRecord> runs;
    if (history && r.id != 0) {
      try {
        runs = history->runs({.label = r.label, .limit = 200});
      } catch (const mon::HistoryError& e) {
        std::fprintf(stderr, "spyglass: warning: alerts: %s\n", e.what());
      }
    }
    if (runs.empty() || runs.front().id != r.id) runs.insert(runs.begin(), r);
    const auto sent = run_alerts->finish(runs, r.id);
    if (!quiet) std::fputs(alerts::delivered_text(sent).c_str(), stderr);
  }
  if (!gate_asked) return r.exit_code;
  // The gate is checked and its reports written whatever the command did (a failed run is
  // a failing test case); the command's own failure then keeps its status.
  int g = 1;
  if (!history || r.id == 0) {
    std::fprintf(stderr, "spyglass: error: the run was not recorded, so the gate cannot be checked\n");
    cli::GateReport rep;
    rep.label = r.label;
    rep.start_unix_ns = static_cast<std::int64_t>(spyglass::clock::realtime_ns());
    rep.checks.push_back({.name = "run recorded",
                          .status = cli::GateCheck::Status::fail,
                          .measured = "not recorded",
                          .threshold = "recorded in the history",
                          .message = "the run was not recorded, so the rules could not be checked"});
    (void)cli::write_gate_reports(rep, gate_files);
  } else {
    gate.history.label = r.label;
    try {
      g = cli::run_gate(*history, gate, 1000, gate_files, quiet ? nullptr : stderr);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "spyglass: error: gate: %s\n", e.what());
    }
  }
  if (r.exit_code != 0) return r.exit_code;
  if (g == cli::kGateFailed) return gate_exit_code;
  return g == 1 ? 125 : g;
}

// The options `history` and `alerts` share (--label, --limit, --since, --json, --db) into
// `q`, `db` and `json`. Returns false when --help was asked for (the usage is printed).
template <class Query>
bool parse_listing_options(Args& a, const char* command, const char* usage, Query& q, std::string& db,
                           bool& json) {
  while (!a.done()) {
    if (!a.is_option()) {
      throw UsageError{std::string(command) + ": unexpected argument '" + std::string(a.peek()) + "'"};
    }
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(usage, stdout);
      return false;
    }
    if (opt == "--label") {
      q.label = std::string(a.value(opt));
    } else if (opt == "--limit") {
      q.limit = static_cast<std::size_t>(parse_int(opt, a.value(opt), 1));
    } else if (opt == "--since") {
      q.since_unix_ns = since_option(opt, a.value(opt));
    } else if (opt == "--json") {
      json = true;
    } else if (opt == "--db") {
      db = std::string(a.value(opt));
    } else {
      throw UsageError{std::string(command) + ": unknown option " + std::string(opt)};
    }
  }
  return true;
}

int cmd_alerts(Args& a) {
  if (!a.done() && a.peek() == "check") {
    a.positional();
    if (a.done()) throw UsageError{"alerts check: FILE missing"};
    const std::string file(a.positional());
    if (is_help(file)) {
      std::fputs(kAlertsUsage, stdout);
      return 0;
    }
    if (!a.done()) throw UsageError{"alerts check: unexpected argument '" + std::string(a.peek()) + "'"};
    try {
      const auto rules = alerts::load_rules(file);
      std::printf("%s: %zu rules, %zu channels: valid\n", file.c_str(), rules.rules.size(),
                  rules.channels.size());
      return 0;
    } catch (const alerts::RuleError& e) {
      std::fprintf(stderr, "spyglass: %s\n", e.what());
      return 1;
    }
  }
  mon::AlertQuery q;
  std::string db = default_db();
  bool json = false;
  if (!parse_listing_options(a, "alerts", kAlertsUsage, q, db, json)) return 0;
  mon::History h = mon::History::open(db, {.create = false, .read_only = true});
  const auto list = h.alerts(q);
  std::fputs((json ? alerts::alerts_json(list) : alerts::alerts_text(list)).c_str(), stdout);
  return 0;
}

int cmd_history(Args& a) {
  mon::HistoryQuery q;
  q.with_detections = true;
  std::string db = default_db();
  bool json = false;
  if (!parse_listing_options(a, "history", kHistoryUsage, q, db, json)) return 0;
  mon::History h = mon::History::open(db, {.create = false, .read_only = true});
  const auto runs = h.runs(q);
  if (json) {
    std::string out = "[";
    for (std::size_t i = 0; i < runs.size(); ++i) {
      if (i != 0) out += ',';
      mon::write_json(runs[i], out);
    }
    out += "]\n";
    std::fputs(out.c_str(), stdout);
  } else {
    std::fputs(cli::history_table(runs).c_str(), stdout);
  }
  return 0;
}

int cmd_show(Args& a) {
  std::string db = default_db();
  bool json = false;
  std::optional<std::int64_t> id;
  while (!a.done()) {
    if (!a.is_option()) {
      const std::string_view v = a.positional();
      if (id) throw UsageError{"show: only one RUN_ID"};
      id = parse_int("RUN_ID", v, 1);
      continue;
    }
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kShowUsage, stdout);
      return 0;
    }
    if (opt == "--json") {
      json = true;
    } else if (opt == "--db") {
      db = std::string(a.value(opt));
    } else {
      throw UsageError{"show: unknown option " + std::string(opt)};
    }
  }
  if (!id) throw UsageError{"show: RUN_ID missing"};
  mon::History h = mon::History::open(db, {.create = false, .read_only = true});
  const auto r = h.run(*id);
  if (!r) {
    std::fprintf(stderr, "spyglass: no run %lld in %s\n", static_cast<long long>(*id), h.location().c_str());
    return 1;
  }
  const auto samples = h.samples(*id);
  if (json) {
    std::string out = "{\"run\":";
    mon::write_json(*r, out);
    out += ",\"samples\":[";
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (i != 0) out += ',';
      mon::write_json(samples[i], 0, out);
    }
    out += "]}\n";
    std::fputs(out.c_str(), stdout);
  } else {
    std::string out = cli::run_details(*r);
    out += cli::sample_chart(samples, 60);
    std::fputs(out.c_str(), stdout);
  }
  return 0;
}

// Options shared by detect and analyze; returns false for an option it does not know.
// The raw --prometheus/--query/--start/--end/--step values, checked once all are read.
struct PrometheusArgs {
  std::string url, query, start, end = "now", step;
  bool any = false;
};

bool series_option(Args& a, std::string_view opt, cli::DetectOptions& d, PrometheusArgs& p, bool& json) {
  if (opt == "--prometheus" || opt == "--query" || opt == "--start" || opt == "--end" || opt == "--step") {
    std::string& field = opt == "--prometheus" ? p.url
                         : opt == "--query"    ? p.query
                         : opt == "--start"    ? p.start
                         : opt == "--end"      ? p.end
                                               : p.step;
    field = std::string(a.value(opt));
    p.any = true;
  } else if (opt == "--csv") {
    d.source = std::string(a.value(opt));
  } else if (opt == "--time-column") {
    d.time_column = std::string(a.value(opt));
  } else if (opt == "--time-unit") {
    const std::string_view v = a.value(opt);
    const auto u = cli::parse_time_unit(v);
    if (!u) throw UsageError{"--time-unit: not s, ms, us, ns or auto: '" + std::string(v) + "'"};
    d.time_unit = *u;
  } else if (opt == "--value-column") {
    d.value_column = std::string(a.value(opt));
  } else if (opt == "--method") {
    d.method = std::string(a.value(opt));
  } else if (opt == "--threshold") {
    std::string_view rest;
    const std::string_view v = a.value(opt);
    const auto n = parse_number(v, rest);
    if (!n || !rest.empty() || *n <= 0)
      throw UsageError{"--threshold: not a positive number: '" + std::string(v) + "'"};
    d.threshold = *n;
  } else if (opt == "--json") {
    json = true;
  } else {
    return false;
  }
  return true;
}

// The range query the options describe. Start and end: `now`, `now-DURATION`, ISO 8601 or
// Unix seconds; the step defaults to what gives about 250 points.
cli::PrometheusQuery prometheus_query(const char* cmd, const PrometheusArgs& p) {
  const std::string c(cmd);
  if (p.url.empty()) throw UsageError{c + ": --query, --start, --end and --step go with --prometheus URL"};
  if (p.query.empty()) throw UsageError{c + ": --prometheus needs --query Q"};
  if (p.start.empty()) throw UsageError{c + ": --prometheus needs --start (e.g. now-1h)"};
  const double now = unix_now();
  cli::PrometheusQuery q;
  q.url = p.url;
  q.query = p.query;
  q.start = time_option("--start", p.start, now);
  q.end = time_option("--end", p.end, now);
  if (!(q.start < q.end)) throw UsageError{c + ": --start must be before --end"};
  if (p.step.empty()) {
    q.step = std::max(1.0, std::ceil((q.end - q.start) / 250));
  } else {
    const auto step = cli::parse_seconds(p.step);
    if (!step || !(*step >= 0.001))
      throw UsageError{"--step: not a duration of 1ms or more: '" + p.step + "'"};
    q.step = *step;
  }
  // Prometheus refuses more than 11,000 points per series.
  if ((q.end - q.start) / q.step > 11000)
    throw UsageError{c + ": more than 11000 points between --start and --end; use a larger --step"};
  return q;
}

cli::Series read_series(const char* cmd, cli::DetectOptions& d, const PrometheusArgs& p) {
  try {
    cli::check_detect_options(d);
  } catch (const cli::InputError& e) {
    throw UsageError{e.what()};
  }
  if (p.any) {
    if (!d.source.empty()) throw UsageError{std::string(cmd) + ": --csv and --prometheus exclude each other"};
    d.prometheus = prometheus_query(cmd, p);
    return cli::read_prometheus_series(*d.prometheus);
  }
  if (d.source.empty()) throw UsageError{std::string(cmd) + ": --csv FILE or --prometheus URL is required"};
  if (d.time_column.empty()) throw UsageError{std::string(cmd) + ": --time-column is required"};
  if (d.value_column.empty()) throw UsageError{std::string(cmd) + ": --value-column is required"};
  cli::Series s = cli::read_csv_series(d.source, d.time_column, d.value_column, d.time_unit);
  if (!s.unsorted.empty())
    std::fprintf(stderr, "spyglass: warning: rows out of time order (%s); sorted by time\n",
                 s.unsorted.c_str());
  return s;
}

int cmd_detect(Args& a) {
  cli::DetectOptions d;
  d.method.clear();  // the default depends on --offline
  PrometheusArgs p;
  bool json = false;
  while (!a.done()) {
    if (!a.is_option()) throw UsageError{"detect: unexpected argument '" + std::string(a.peek()) + "'"};
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kDetectUsage, stdout);
      std::fputs(kSeriesSources, stdout);
      return 0;
    }
    if (series_option(a, opt, d, p, json)) continue;
    if (opt == "--offline") {
      d.offline = true;
    } else if (opt == "--window") {
      d.window = static_cast<std::size_t>(parse_int(opt, a.value(opt), 3));
    } else {
      throw UsageError{"detect: unknown option " + std::string(opt)};
    }
  }
  // ewma scores each point by its past only; on the whole series (--offline) mad is the
  // best of the others in `spyglass evaluate`, and analyze's default.
  if (d.method.empty()) d.method = d.offline ? "mad" : "ewma";
  const cli::Series s = read_series("detect", d, p);
  std::fputs(cli::detect_report(s, d, json).c_str(), stdout);
  return 0;
}

// `analyze --label`'s --limit values: METRIC=VALUE, VALUE in the metric's unit as `gate`
// reads it; a bare VALUE when `metrics` names exactly one metric.
std::vector<std::pair<std::string, double>> history_limits(const std::vector<std::string_view>& args,
                                                           const std::vector<std::string>& metrics) {
  std::vector<std::pair<std::string, double>> out;
  for (const std::string_view arg : args) {
    const auto eq = arg.find('=');
    std::string metric;
    std::string_view value = arg;
    if (eq != std::string_view::npos) {
      metric = std::string(arg.substr(0, eq));
      value = arg.substr(eq + 1);
    } else if (!metrics.empty() && std::all_of(metrics.begin(), metrics.end(),
                                               [&](const std::string& m) { return m == metrics.front(); })) {
      metric = metrics.front();
    } else {
      throw UsageError{"--limit " + std::string(arg) +
                       ": which metric? give METRIC=VALUE (--limit max_rss=2GiB, --limit wall=1.5s), or "
                       "exactly one --metric"};
    }
    std::string unit;
    try {
      unit = cli::metric_unit(metric);  // "" for a custom metric: its unit is known once its runs are read
    } catch (const cli::InputError& e) {
      throw UsageError{"--limit " + std::string(arg) + ": " + e.what()};
    }
    if (!metrics.empty() && std::find(metrics.begin(), metrics.end(), metric) == metrics.end())
      throw UsageError{"--limit " + std::string(arg) + ": " + metric + " is not among the --metric analysed"};
    for (const auto& [m, v] : out) {
      if (m == metric) throw UsageError{"--limit: " + metric + " has two limits"};
    }
    const auto v = cli::parse_quantity(unit, value);
    if (!v) {
      throw UsageError{"--limit " + std::string(arg) + ": '" + std::string(value) + "' is not " +
                       cli::quantity_words(unit)};
    }
    out.emplace_back(metric, *v);
  }
  return out;
}

// `analyze` without --label: each label of the history in turn (the one with the newest
// run first), one section each, or one member each of a JSON object keyed by label. A
// label with too few successful runs says so in its section ({"error": ...}) and the
// others go on. Exit 1 when no label could be analysed.
int analyze_every_label(mon::History& hist, cli::HistoryAnalyzeOptions h, std::size_t runs,
                        std::optional<std::int64_t> since, bool json) {
  std::string out;
  spyglass::JsonWriter w(out);
  if (json) w.begin_object();
  std::size_t seen = 0, analysed = 0;
  for (const auto& l : hist.labels()) {
    const auto list =
        hist.runs({.label = l.label, .limit = runs, .since_unix_ns = since, .with_invocation = false});
    if (list.empty()) continue;  // none since the given time
    ++seen;
    h.label = l.label;
    h.pinned.reset();
    for (const auto& pin : hist.pinned_baselines(h.label)) h.pinned = pin.run_id;
    std::string section, error;
    try {
      section = cli::history_report(list, h, json);
      ++analysed;
    } catch (const cli::InputError& e) {
      error = e.what();
    }
    if (json) {
      w.key(l.label);
      if (error.empty()) {
        while (!section.empty() && section.back() == '\n') section.pop_back();
        w.raw(section);
      } else {
        w.begin_object();
        w.key("error");
        w.value(error);
        w.end_object();
      }
    } else {
      if (seen > 1) out += "\n";
      out += error.empty() ? section : error + "\n";
    }
  }
  if (seen == 0) {
    std::fprintf(stderr, "spyglass: no runs%s in %s\n", since ? " since the given time" : "",
                 hist.location().c_str());
    return 1;
  }
  if (json) {
    w.end_object();
    out += '\n';
  }
  std::fputs(out.c_str(), stdout);
  return analysed == 0 ? 1 : 0;
}

int cmd_analyze(Args& a) {
  cli::HistoryAnalyzeOptions h;
  cli::AnalyzeOptions& o = h.analysis;
  PrometheusArgs p;
  bool json = false;
  std::string db = default_db();
  std::size_t runs = 1000;
  std::optional<std::int64_t> since;
  std::vector<std::string_view> limits;  // read once --metric and --label are known
  while (!a.done()) {
    if (!a.is_option()) throw UsageError{"analyze: unexpected argument '" + std::string(a.peek()) + "'"};
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kAnalyzeUsage, stdout);
      std::fputs(kSeriesSources, stdout);
      return 0;
    }
    if (series_option(a, opt, o.detect, p, json)) continue;
    if (opt == "--horizon") {
      o.horizon = static_cast<std::size_t>(parse_int(opt, a.value(opt), 1));
    } else if (opt == "--season") {
      o.season = static_cast<std::size_t>(parse_int(opt, a.value(opt), 2));
    } else if (opt == "--limit") {
      limits.push_back(a.value(opt));
    } else if (opt == "--label") {
      h.label = std::string(a.value(opt));
    } else if (opt == "--metric") {
      h.metrics.emplace_back(a.value(opt));
    } else if (opt == "--db") {
      db = std::string(a.value(opt));
    } else if (opt == "--runs") {
      runs = static_cast<std::size_t>(parse_int(opt, a.value(opt), 3));
    } else if (opt == "--since") {
      since = since_option(opt, a.value(opt));
    } else if (opt == "--latest") {
      h.latest = static_cast<std::size_t>(parse_int(opt, a.value(opt), 1));
    } else if (opt == "--baseline") {
      h.baseline = static_cast<std::size_t>(parse_int(opt, a.value(opt), 3));
    } else {
      throw UsageError{"analyze: unknown option " + std::string(opt)};
    }
  }
  if (!h.label.empty()) {
    h.limits = history_limits(limits, h.metrics);
  } else if (!limits.empty()) {
    // A series has no unit: its limit is a plain number in the series' own terms.
    const std::string_view v = limits.back();
    if (limits.size() > 1) throw UsageError{"--limit: a series takes one limit"};
    if (v.find('=') != std::string_view::npos)
      throw UsageError{"--limit " + std::string(v) +
                       ": METRIC=VALUE goes with --label; a series' limit is a number"};
    double x = 0;
    const auto r = std::from_chars(v.data(), v.data() + v.size(), x);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size() || !std::isfinite(x))
      throw UsageError{"--limit: not a number: '" + std::string(v) + "'"};
    o.limit = x;
  }
  if (o.detect.method == "ewma") {
    throw UsageError{
        "--method ewma judges each point by its past only; analyze scores every point against the whole "
        "series: mad (the default), zscore or iqr (ewma is for spyglass detect)"};
  }
  cli::DetectOptions whole = o.detect;
  whole.offline = true;  // analysis scores against the whole series
  const bool series = !o.detect.source.empty() || p.any;
  if (!h.label.empty() || !series) {
    if (series) throw UsageError{"analyze: --label excludes --csv and --prometheus"};
    try {
      cli::check_history_options(h);
    } catch (const cli::InputError& e) {
      throw UsageError{e.what()};
    }
    mon::History hist = mon::History::open(db, {.create = false, .read_only = true});
    if (h.label.empty()) return analyze_every_label(hist, h, runs, since, json);
    // Only what the analyses read: no command, args, cwd or host.
    const auto list =
        hist.runs({.label = h.label, .limit = runs, .since_unix_ns = since, .with_invocation = false});
    for (const auto& pin : hist.pinned_baselines(h.label)) h.pinned = pin.run_id;
    if (list.empty()) {
      std::fprintf(stderr, "spyglass: no runs labelled '%s'%s in %s\n", h.label.c_str(),
                   since ? " since the given time" : "", hist.location().c_str());
      return 1;
    }
    std::fputs(cli::history_report(list, h, json).c_str(), stdout);
    return 0;
  }
  if (since) throw UsageError{"analyze: --since goes with --label (a series' range is its own)"};
  const cli::Series s = read_series("analyze", whole, p);
  o.detect.prometheus = whole.prometheus;
  std::fputs(cli::analyze_report(s, o, json).c_str(), stdout);
  return 0;
}

int cmd_evaluate(Args& a) {
  cli::EvaluateOptions o;
  bool json = false;
  std::vector<std::string> methods;
  while (!a.done()) {
    if (!a.is_option()) throw UsageError{"evaluate: unexpected argument '" + std::string(a.peek()) + "'"};
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kEvaluateUsage, stdout);
      return 0;
    }
    if (opt == "--seed") {
      o.seed = static_cast<std::uint64_t>(parse_int(opt, a.value(opt), 0));
    } else if (opt == "--series") {
      o.per_kind = static_cast<std::size_t>(parse_int(opt, a.value(opt), 1));
    } else if (opt == "--length") {
      o.length = static_cast<std::size_t>(parse_int(opt, a.value(opt), 500));
    } else if (opt == "--method") {
      cli::DetectOptions d;
      d.method = std::string(a.value(opt));
      try {
        cli::check_detect_options(d);
      } catch (const cli::InputError& e) {
        throw UsageError{e.what()};
      }
      methods.push_back(d.method);
    } else if (opt == "--json") {
      json = true;
    } else {
      throw UsageError{"evaluate: unknown option " + std::string(opt)};
    }
  }
  if (!methods.empty()) o.methods = methods;
  std::fputs(cli::evaluate_report(o, json).c_str(), stdout);
  return 0;
}

int cmd_gate(Args& a) {
  cli::GateOptions o;
  cli::GateOutputs files;
  std::string db = default_db();
  std::size_t runs = 1000;
  while (!a.done()) {
    if (!a.is_option()) throw UsageError{"gate: unexpected argument '" + std::string(a.peek()) + "'"};
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kGateUsage, stdout);
      return 0;
    }
    if (opt == "--label") {
      o.history.label = std::string(a.value(opt));
    } else if (opt == "--rule") {
      try {
        o.rules.push_back(cli::parse_gate_rule(a.value(opt)));
      } catch (const cli::InputError& e) {
        throw UsageError{std::string("--rule: ") + e.what()};
      }
    } else if (opt == "--latest") {
      o.history.latest = static_cast<std::size_t>(parse_int(opt, a.value(opt), 1));
    } else if (opt == "--baseline") {
      o.history.baseline = static_cast<std::size_t>(parse_int(opt, a.value(opt), 3));
    } else if (opt == "--runs") {
      runs = static_cast<std::size_t>(parse_int(opt, a.value(opt), 3));
    } else if (opt == "--recent") {
      o.recent = static_cast<std::size_t>(parse_int(opt, a.value(opt), 1));
    } else if (opt == "--junit") {
      files.junit = std::string(a.value(opt));
    } else if (opt == "--tap") {
      files.tap = std::string(a.value(opt));
    } else if (opt == "--markdown") {
      files.markdown = std::string(a.value(opt));
    } else if (opt == "--db") {
      db = std::string(a.value(opt));
    } else {
      throw UsageError{"gate: unknown option " + std::string(opt)};
    }
  }
  if (o.history.label.empty()) throw UsageError{"gate: --label L is required"};
  if (o.rules.empty()) throw UsageError{"gate: at least one --rule is required"};
  mon::History hist = mon::History::open(db, {.create = false, .read_only = true});
  return cli::run_gate(hist, o, runs, files, stdout);
}

int cmd_baseline(Args& a) {
  std::string db = default_db(), label;
  bool json = false;
  std::string action;
  std::optional<std::int64_t> id;
  while (!a.done()) {
    if (!a.is_option()) {
      const std::string_view v = a.positional();
      if (action.empty()) {
        action = std::string(v);
        if (action != "pin" && action != "unpin" && action != "show")
          throw UsageError{"baseline: expected pin, unpin or show, got '" + action + "'"};
      } else if (action == "pin" && !id) {
        id = parse_int("RUN_ID", v, 1);
      } else {
        throw UsageError{"baseline: unexpected argument '" + std::string(v) + "'"};
      }
      continue;
    }
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kBaselineUsage, stdout);
      return 0;
    }
    if (opt == "--db") {
      db = std::string(a.value(opt));
    } else if (opt == "--label" && action != "pin") {
      label = std::string(a.value(opt));
    } else if (opt == "--json" && action == "show") {
      json = true;
    } else {
      throw UsageError{"baseline: unknown option " + std::string(opt)};
    }
  }
  if (action.empty()) throw UsageError{"baseline: pin, unpin or show is required"};
  if (action == "pin") {
    if (!id) throw UsageError{"baseline pin: RUN_ID missing"};
    mon::History h = mon::History::open(db, {.create = false});
    const auto r = h.run(*id);
    if (!r) {
      std::fprintf(stderr, "spyglass: no run %lld in %s\n", static_cast<long long>(*id),
                   h.location().c_str());
      return 1;
    }
    if (!cli::successful_run(*r)) {
      std::fprintf(stderr,
                   "spyglass: run %lld did not succeed (exit %d%s); a baseline must be a successful run\n",
                   static_cast<long long>(*id), r->exit_code, r->kill_reason.empty() ? "" : ", killed");
      return 1;
    }
    h.pin_baseline(*id);
    std::printf("run %lld is the baseline of label %s\n", static_cast<long long>(*id), r->label.c_str());
    return 0;
  }
  if (action == "unpin") {
    if (label.empty()) throw UsageError{"baseline unpin: --label L is required"};
    mon::History h = mon::History::open(db, {.create = false});
    if (!h.unpin_baseline(label)) {
      std::fprintf(stderr, "spyglass: label '%s' has no pinned baseline in %s\n", label.c_str(),
                   h.location().c_str());
      return 1;
    }
    std::printf("label %s has no pinned baseline any more\n", label.c_str());
    return 0;
  }
  mon::History h = mon::History::open(db, {.create = false, .read_only = true});
  const auto pins = h.pinned_baselines(label);
  std::string out;
  if (json) {
    spyglass::JsonWriter w(out);
    w.begin_array();
    for (const auto& p : pins) {
      w.begin_object();
      w.key("label");
      w.value(p.label);
      w.key("run_id");
      w.value(p.run_id);
      w.key("pinned_unix_ns");
      w.value(p.pinned_unix_ns);
      w.end_object();
    }
    w.end_array();
    out += '\n';
  } else {
    for (const auto& p : pins) {
      out += p.label + ": run " + std::to_string(p.run_id) + ", pinned " +
             cli::format_time(p.pinned_unix_ns) + "\n";
    }
    if (pins.empty()) out = "no pinned baseline\n";
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

// An output file that appears only when complete: written to a temporary name beside it
// and renamed by commit(), so a failed conversion leaves an existing file as it was. "-"
// is standard output.
class OutputFile {
 public:
  explicit OutputFile(std::string path) : path_(std::move(path)) {
    if (path_ == "-") {
      f_ = stdout;
      return;
    }
    // A device or a pipe (/dev/null, /dev/stdout) is written to directly.
    std::error_code ec;
    const auto type = std::filesystem::status(path_, ec).type();
    if (type != std::filesystem::file_type::not_found && type != std::filesystem::file_type::regular) {
      f_ = std::fopen(path_.c_str(), "wb");
      if (f_ == nullptr) throw cli::InputError(path_ + ": cannot write: " + std::strerror(errno));
      direct_ = true;
      return;
    }
    tmp_ = path_ + ".tmp" + std::to_string(::getpid());
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (f_ == nullptr) throw cli::InputError(path_ + ": cannot write: " + std::strerror(errno));
  }
  ~OutputFile() {
    if (f_ != nullptr && f_ != stdout) {
      std::fclose(f_);
      if (!direct_) std::remove(tmp_.c_str());
    }
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  std::FILE* get() const { return f_; }
  void write(const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), f_) != text.size()) fail();
  }
  void commit() {
    if (std::fflush(f_) != 0) fail();
    if (f_ == stdout) return;
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (direct_) {
      if (rc != 0) fail();
      return;
    }
    if (rc != 0 || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      std::remove(tmp_.c_str());
      throw cli::InputError(path_ + ": cannot write: " + std::strerror(err));
    }
  }

 private:
  [[noreturn]] void fail() const { throw cli::InputError(path_ + ": cannot write: " + std::strerror(errno)); }
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool direct_ = false;
};

// With --skip-bad (trace, report --trace): each line that is not a span is said on stderr
// (the first ten), then counted in TraceStats::bad_lines.
void report_skipped_lines(cli::TraceOptions& o) {
  o.on_bad = [reported = std::size_t{0}](const std::string& msg) mutable {
    if (++reported <= 10) std::fprintf(stderr, "spyglass: skipped %s\n", msg.c_str());
  };
}

int cmd_trace(Args& a) {
  std::vector<std::string> inputs;
  std::optional<std::string> output, flamegraph;
  bool folded = false, quiet = false;
  cli::TraceOptions o;
  spyglass::FlameGraphOptions fg;
  fg.title = "spyglass trace";
  while (!a.done()) {
    if (!a.is_option()) {
      inputs.emplace_back(a.positional());
      continue;
    }
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kTraceUsage, stdout);
      return 0;
    }
    if (opt == "-o" || opt == "--output") {
      output = std::string(a.value(opt));
    } else if (opt == "--folded") {
      folded = true;
    } else if (opt == "--flamegraph") {
      flamegraph = std::string(a.value(opt));
    } else if (opt == "--title") {
      fg.title = std::string(a.value(opt));
    } else if (opt == "--skip-bad") {
      o.skip_bad = true;
    } else if (opt == "--window") {
      o.window = static_cast<std::size_t>(parse_int(opt, a.value(opt), 1));
    } else if (opt == "--quiet" || opt == "-q") {
      quiet = true;
    } else {
      throw UsageError{"trace: unknown option " + std::string(opt)};
    }
  }
  if (inputs.empty()) throw UsageError{"trace: no input file (- reads standard input)"};
  if (std::count(inputs.begin(), inputs.end(), std::string("-")) > 1) {
    throw UsageError{"trace: standard input (-) given twice"};
  }
  // Which outputs: the trace unless only a flame graph was asked for.
  const bool chrome = !folded && (output || !flamegraph);
  if (!output && chrome) output = "trace.json";
  if (!output && folded) output = "-";
  report_skipped_lines(o);

  std::optional<OutputFile> out;
  if (output) out.emplace(*output);
  std::optional<cli::ChromeTraceSink> chrome_sink;
  std::optional<cli::FoldedSink> folded_sink;
  std::vector<cli::SpanSink*> sinks;
  if (chrome) sinks.push_back(&chrome_sink.emplace(out->get()));
  if (folded || flamegraph) sinks.push_back(&folded_sink.emplace(o.window));
  cli::TraceStats stats;
  try {
    stats = cli::convert_spans(inputs, o, sinks);
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const cli::InputError*>(&e) != nullptr) throw;
    throw cli::InputError(*output + ": " + e.what());
  }
  if (folded) out->write(cli::folded_text(folded_sink->stacks()));
  if (flamegraph) {
    OutputFile svg(*flamegraph);
    svg.write(spyglass::render_flame_graph(folded_sink->stacks(), fg));
    svg.commit();
  }
  if (out) out->commit();
  if (!quiet) {
    std::fprintf(stderr, "spyglass: %llu spans on %llu threads, %llu flows",
                 static_cast<unsigned long long>(stats.spans), static_cast<unsigned long long>(stats.threads),
                 static_cast<unsigned long long>(stats.flows));
    if (stats.without_parent != 0) {
      std::fprintf(stderr, ", %llu spans whose parent is not in the input",
                   static_cast<unsigned long long>(stats.without_parent));
    }
    if (stats.bad_lines != 0) {
      std::fprintf(stderr, ", %llu bad lines skipped", static_cast<unsigned long long>(stats.bad_lines));
    }
    std::fputc('\n', stderr);
  }
  return 0;
}

// The options serve and report share; false for one they do not know.
bool page_option(Args& a, std::string_view opt, cli::PageOptions& o, std::string& db) {
  if (opt == "--db") {
    db = std::string(a.value(opt));
  } else if (opt == "--runs") {
    o.runs = static_cast<std::size_t>(parse_int(opt, a.value(opt), 3));
  } else if (opt == "--latest") {
    o.analysis.latest = static_cast<std::size_t>(parse_int(opt, a.value(opt), 1));
  } else if (opt == "--baseline") {
    o.analysis.baseline = static_cast<std::size_t>(parse_int(opt, a.value(opt), 3));
  } else {
    return false;
  }
  return true;
}

int cmd_serve(Args& a) {
  cli::PageOptions o;
  std::string db = default_db(), addr = "127.0.0.1:9466";
  while (!a.done()) {
    if (!a.is_option()) throw UsageError{"serve: unexpected argument '" + std::string(a.peek()) + "'"};
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kServeUsage, stdout);
      return 0;
    }
    if (page_option(a, opt, o, db)) continue;
    if (opt != "--addr") throw UsageError{"serve: unknown option " + std::string(opt)};
    addr = std::string(a.value(opt));
  }
  // HOST:PORT, [IPv6]:PORT.
  const auto colon = addr.rfind(':');
  std::string host = colon == std::string::npos ? "" : addr.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port = colon == std::string::npos ? "" : addr.substr(colon + 1);
  std::int64_t p = -1;
  const auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (host.empty() || port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || p < 0 ||
      p > 65535) {
    throw UsageError{"--addr: expected HOST:PORT (port 0-65535), got '" + addr + "'"};
  }
  return cli::serve_history(db, host, static_cast<int>(p), o);
}

int cmd_report(Args& a) {
  cli::PageOptions o;
  std::string db = default_db(), label, html;
  std::vector<std::string> traces;
  cli::TraceOptions t;
  while (!a.done()) {
    if (!a.is_option()) throw UsageError{"report: unexpected argument '" + std::string(a.peek()) + "'"};
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kReportUsage, stdout);
      return 0;
    }
    if (page_option(a, opt, o, db)) continue;
    if (opt == "--label") {
      label = std::string(a.value(opt));
    } else if (opt == "--html") {
      html = std::string(a.value(opt));
    } else if (opt == "--trace") {
      traces.emplace_back(a.value(opt));
    } else if (opt == "--skip-bad") {
      t.skip_bad = true;
    } else {
      throw UsageError{"report: unknown option " + std::string(opt)};
    }
  }
  if (label.empty()) throw UsageError{"report: --label L is required"};
  if (html.empty()) throw UsageError{"report: --html FILE is required"};
  std::string flame;
  if (!traces.empty()) {
    report_skipped_lines(t);
    cli::FoldedSink folded(t.window);
    std::vector<cli::SpanSink*> sinks{&folded};
    const cli::TraceStats stats = cli::convert_spans(traces, t, sinks);
    if (stats.bad_lines != 0) {
      std::fprintf(stderr, "spyglass: %llu bad trace lines skipped\n",
                   static_cast<unsigned long long>(stats.bad_lines));
    }
    spyglass::FlameGraphOptions fg;
    fg.title = "Flame graph of " + std::to_string(traces.size()) + " trace file(s)";
    flame = spyglass::render_flame_graph(folded.stacks(), fg);
  }
  mon::History h = mon::History::open(db, {.create = false, .read_only = true});
  const auto page = cli::report_page(h, label, o, flame);
  if (!page) {
    std::fprintf(stderr, "spyglass: no runs labelled '%s' in %s\n", label.c_str(), db.c_str());
    return 1;
  }
  OutputFile out(html);
  out.write(*page);
  out.commit();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // A closed stdout or a file-size limit must not kill us before the command's exit
  // status is reported; the command gets default dispositions back.
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return kUsageError;
  }
  const std::string_view cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  Args a(argc, argv, 2);
  try {
    if (cmd == "run") return cmd_run(a);
    if (cmd == "history") return cmd_history(a);
    if (cmd == "show") return cmd_show(a);
    if (cmd == "detect") return cmd_detect(a);
    if (cmd == "analyze") return cmd_analyze(a);
    if (cmd == "evaluate") return cmd_evaluate(a);
    if (cmd == "gate") return cmd_gate(a);
    if (cmd == "baseline") return cmd_baseline(a);
    if (cmd == "trace") return cmd_trace(a);
    if (cmd == "serve") return cmd_serve(a);
    if (cmd == "report") return cmd_report(a);
    if (cmd == "alerts") return cmd_alerts(a);
    std::fprintf(stderr, "spyglass: unknown command '%s'\n%s", argv[1], kUsage);
    return kUsageError;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "spyglass: %s (spyglass %s --help)\n", e.message.c_str(), argv[1]);
    return kUsageError;
  } catch (const mon::HistoryError& e) {
    std::fprintf(stderr, "spyglass: error: %s\n", e.what());
    return cmd == "run" ? 125 : 1;
  } catch (const cli::InputError& e) {
    std::fprintf(stderr, "spyglass: error: %s\n", e.what());
    return 1;
  } catch (const spyglass::analytics::AnalyticsError& e) {
    std::fprintf(stderr, "spyglass: error: %s\n", e.what());
    return 1;
  }
}
