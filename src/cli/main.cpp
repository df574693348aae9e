// The spyglass command: run, history, show.

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "report.hpp"
#include "spyglass/json.hpp"
#include "spyglass/monitor/history.hpp"
#include "spyglass/monitor/runner.hpp"

namespace {

namespace mon = spyglass::monitor;
namespace cli = spyglass::cli;

constexpr const char* kDefaultDb = "./spyglass-out/history.db";

// The exit status of every usage error (an unknown option or subcommand, a bad value, a
// missing argument), whichever the subcommand: 125 as in coreutils' timeout, env and nice,
// apart from what `run` passes on from the command (its code, 124, 126, 127, 128+N).
constexpr int kUsageError = 125;

constexpr const char* kRunUsage = R"(usage: spyglass run [options] -- COMMAND [ARGS...]

Runs COMMAND, samples its process tree and records the run.

options:
  --timeout DURATION     kill the process tree after DURATION (exit 124); 0: no timeout
  --max-rss SIZE         kill when the tree's summed RSS exceeds SIZE (exit 124)
  --max-cpu SECONDS      kill when the tree's user+system CPU exceeds SECONDS (exit 124)
  --kill graceful|immediate
                         graceful: SIGTERM, then SIGKILL after --grace (default)
  --grace DURATION       default 5s; also how long a signal to spyglass waits for the tree
  --interval DURATION    sampling interval, 10ms or more (default 100ms)
  --label LABEL          groups runs of the same job (default: the command line)
  --db PATH              history database (default ./spyglass-out/history.db; a missing
                         directory is created)
  --no-history           do not record the run
  --json FILE            write the run record and its samples to FILE (- for stdout)
  --smaps                also sample PSS/USS (costlier)
  --kill-leftovers       end processes the command leaves running after it exits
  --no-pty               do not run the command on a pseudo-terminal when ours is one
  --no-ptrace            do not trace the command for its own peak RSS (see README)
  --tail SIZE            keep the last SIZE of stdout and stderr (default 64K)
  --keep-runs N          keep the last N runs per label (default 1000)
  --keep-days DAYS       drop runs older than DAYS
  --quiet                no summary
  --help                 this text

DURATION: a number with ms, s, m or h (plain numbers are seconds). SIZE: bytes, or with K, M, G.
Exit status: the command's; 128+N when signal N ended it; 124 when a limit killed it;
126/127 when it could not be started; 125 for a usage error or when spyglass itself failed.
)";

constexpr const char* kHistoryUsage = R"(usage: spyglass history [--label L] [--limit N] [--json] [--db PATH]

Lists recorded runs, newest first. Exit status: 0; 1 when the database cannot be read;
125 for a usage error.
)";

constexpr const char* kShowUsage = R"(usage: spyglass show RUN_ID [--json] [--db PATH]

Shows one run with a chart of its samples. Exit status: 0; 1 when the run or the
database is missing; 125 for a usage error.
)";

constexpr const char* kUsage = R"(usage:
  spyglass run [options] -- COMMAND [ARGS...]
  spyglass history [--label L] [--limit N] [--json] [--db PATH]
  spyglass show RUN_ID [--json] [--db PATH]
  spyglass SUBCOMMAND --help

A usage error exits with 125, whichever the subcommand.
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

// A finite, non-negative number at the start of `s`; `rest` is what follows it.
std::optional<double> parse_number(std::string_view s, std::string_view& rest) {
  double v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || !std::isfinite(v) || v < 0) return std::nullopt;
  rest = std::string_view(r.ptr, static_cast<std::size_t>(s.data() + s.size() - r.ptr));
  return v;
}

std::chrono::nanoseconds parse_duration(std::string_view opt, std::string_view s) {
  std::string_view unit;
  const auto v = parse_number(s, unit);
  double mult = 0;
  if (unit.empty() || unit == "s") mult = 1e9;
  if (unit == "ms") mult = 1e6;
  if (unit == "us") mult = 1e3;
  if (unit == "m") mult = 60e9;
  if (unit == "h") mult = 3600e9;
  if (!v || mult == 0) throw UsageError{std::string(opt) + ": not a duration: '" + std::string(s) + "'"};
  const double ns = *v * mult;
  if (!(ns < kMaxNs))
    throw UsageError{std::string(opt) + ": out of range: '" + std::string(s) + "' (at most 292 years)"};
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

std::uint64_t parse_size(std::string_view opt, std::string_view s) {
  std::string_view unit;
  const auto v = parse_number(s, unit);
  double mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  if (unit == "K" || unit == "k" || unit == "KiB") mult = 1024.0;
  if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  if (!v || mult == 0) throw UsageError{std::string(opt) + ": not a size: '" + std::string(s) + "'"};
  const double bytes = *v * mult;
  if (!(bytes < kMaxBytes))
    throw UsageError{std::string(opt) + ": out of range: '" + std::string(s) + "' (at most 16 EiB)"};
  return static_cast<std::uint64_t>(bytes);
}

std::int64_t parse_int(std::string_view opt, std::string_view s, std::int64_t min) {
  std::int64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v < min) {
    throw UsageError{std::string(opt) + ": not a valid number: '" + std::string(s) + "'"};
  }
  return v;
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

int cmd_run(Args& a) {
  mon::RunOptions o;
  std::string db = kDefaultDb, json_path;
  bool quiet = false, record = true;
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
    } else if (opt == "--max-cpu") {
      std::string_view rest;
      const std::string_view v = a.value(opt);
      const auto n = parse_number(v, rest);
      if (!n || !rest.empty())
        throw UsageError{"--max-cpu: not a number of seconds: '" + std::string(v) + "'"};
      o.max_cpu_seconds = *n;
    } else if (opt == "--kill") {
      const std::string_view v = a.value(opt);
      if (v == "graceful") {
        o.kill = mon::KillStrategy::graceful;
      } else if (v == "immediate") {
        o.kill = mon::KillStrategy::immediate;
      } else {
        throw UsageError{"--kill: expected graceful or immediate, got '" + std::string(v) + "'"};
      }
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
    } else if (opt == "--quiet" || opt == "-q") {
      quiet = true;
    } else {
      throw UsageError{"run: unknown option " + std::string(opt)};
    }
  }
  o.argv = a.rest();
  if (o.argv.empty()) throw UsageError{"run: no command given (spyglass run [options] -- COMMAND [ARGS...])"};
  if (o.label.empty()) o.label = default_label(o.argv);

  // A database that is not ours stops us before the command runs: better than running
  // it and losing the record. Other failures (a full disk) only lose the record.
  std::optional<mon::History> history;
  if (record) {
    try {
      history.emplace(open_history(db));
    } catch (const mon::HistoryError& e) {
      const auto k = e.kind();
      if (k == mon::HistoryErrorKind::not_a_database || k == mon::HistoryErrorKind::foreign ||
          k == mon::HistoryErrorKind::corrupt || k == mon::HistoryErrorKind::newer_schema) {
        std::fprintf(stderr, "spyglass: error: %s\n", e.what());
        return 125;
      }
      std::fprintf(stderr, "spyglass: warning: the run will not be recorded: %s\n", e.what());
    }
  }

  mon::RunResult res = mon::run(o);
  mon::RunRecord& r = res.record;
  if (!r.error.empty()) {
    std::fprintf(stderr, "spyglass: cannot run '%s': %s\n", r.command.c_str(), r.error.c_str());
  }

  std::vector<mon::RunRecord> baseline;
  if (history) {
    try {
      history->insert(r, res.samples, res.start_mono_ns);
    } catch (const mon::HistoryError& e) {
      std::fprintf(stderr, "spyglass: warning: run not saved to history: %s\n", e.what());
    }
    try {
      if (r.id != 0) baseline = history->baseline(r.label, r.id, 20);
      history->apply_retention(keep);
    } catch (const mon::HistoryError& e) {
      std::fprintf(stderr, "spyglass: warning: %s\n", e.what());
    }
  }

  if (!json_path.empty()) {
    std::string out;
    out += "{\"run\":";
    mon::write_json(r, out);
    out += ",\"samples\":[";
    for (std::size_t i = 0; i < res.samples.size(); ++i) {
      if (i != 0) out += ',';
      mon::write_json(res.samples[i], res.start_mono_ns, out);
    }
    out += "]}\n";
    if (json_path == "-") {
      std::fputs(out.c_str(), stdout);
      std::fflush(stdout);
    } else if (!write_file(json_path, out)) {
      std::fprintf(stderr, "spyglass: warning: cannot write %s: %s\n", json_path.c_str(),
                   std::strerror(errno));
    }
  }
  if (!quiet) std::fputs(cli::run_summary(r, baseline, res.leftover_pids).c_str(), stderr);
  return r.exit_code;
}

int cmd_history(Args& a) {
  mon::HistoryQuery q;
  std::string db = kDefaultDb;
  bool json = false;
  while (!a.done()) {
    if (!a.is_option()) throw UsageError{"history: unexpected argument '" + std::string(a.peek()) + "'"};
    const std::string_view opt = a.next_option();
    if (is_help(opt)) {
      std::fputs(kHistoryUsage, stdout);
      return 0;
    }
    if (opt == "--label") {
      q.label = std::string(a.value(opt));
    } else if (opt == "--limit") {
      q.limit = static_cast<std::size_t>(parse_int(opt, a.value(opt), 1));
    } else if (opt == "--json") {
      json = true;
    } else if (opt == "--db") {
      db = std::string(a.value(opt));
    } else {
      throw UsageError{"history: unknown option " + std::string(opt)};
    }
  }
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
  std::string db = kDefaultDb;
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
    std::fprintf(stderr, "spyglass: no run %lld in %s\n", static_cast<long long>(*id), db.c_str());
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
    std::fprintf(stderr, "spyglass: unknown command '%s'\n%s", argv[1], kUsage);
    return kUsageError;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "spyglass: %s (spyglass %s --help)\n", e.message.c_str(), argv[1]);
    return kUsageError;
  } catch (const mon::HistoryError& e) {
    std::fprintf(stderr, "spyglass: error: %s\n", e.what());
    return cmd == "run" ? 125 : 1;
  }
}
