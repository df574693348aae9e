#pragma once
// `spyglass gate`: rules on a label's latest run and history, for CI, with JUnit XML, TAP
// and Markdown reports.

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "analyze.hpp"
#include "spyglass/monitor/history.hpp"
#include "spyglass/monitor/record.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// The exit status of `gate` when a rule fails: apart from 0, from 1 (the history cannot
/// be read) and from 125 (a usage error).
constexpr int kGateFailed = 3;
/// The exit status of `run --gate` when the command succeeded and a rule fails (unless
/// --gate-exit-code sets another): next to the codes spyglass keeps for itself (124 to
/// 127), so that it is not taken for a command's own failure, whose status comes first.
constexpr int kRunGateFailed = 123;

/// One `--rule`.
struct GateRule {
  enum class Kind { threshold, no_regression, no_change_point };
  Kind kind = Kind::threshold;
  std::string text;  ///< as given
  /// The metric of a threshold; those a test covers (empty: every metric the runs have,
  /// built in or custom).
  std::vector<std::string> metrics;
  std::string op;    ///< threshold: <, <=, > or >=
  double limit = 0;  ///< threshold: seconds or bytes
};

/// Parses `METRIC OP VALUE` (VALUE in the metric's unit, as `run` reads durations and
/// sizes), `no-regression[:M,M...]` or `no-change-point[:M,M...]` (default: every
/// metric). Throws InputError naming the rule.
GateRule parse_gate_rule(std::string_view text);

/// What `gate` checks and how.
struct GateOptions {
  std::vector<GateRule> rules;
  HistoryAnalyzeOptions history;  ///< label, latest, baseline and the pinned run
  std::size_t recent = 10;        ///< no-change-point: a change starting in the newest N runs fails
};

/// The outcome of one rule on one metric: one test case of the reports.
struct GateCheck {
  enum class Status { pass, fail, skip };
  std::string name;  ///< e.g. "wall < 2s", "no-regression wall"
  Status status = Status::pass;
  std::string measured;   ///< what was found, in words with units
  std::string threshold;  ///< what the rule asks, in words
  std::string message;    ///< one line: measured value against the threshold, or why skipped
  double seconds = 0;     ///< time taken to check
};

/// The result of a gate on one label.
struct GateReport {
  std::string label;
  std::int64_t run_id = 0;         ///< the latest run
  std::int64_t start_unix_ns = 0;  ///< when the gate was evaluated
  double seconds = 0;              ///< time taken by every check
  std::vector<GateCheck> checks;
  [[nodiscard]] std::size_t count(GateCheck::Status s) const;
};

/// Evaluates `o.rules` on `runs` (a label's runs, newest first, not empty). When the latest
/// run failed or was killed, the first check is a failing "latest run succeeded" and the
/// threshold rules are skipped: its figures are those of a cut-short run. Throws InputError.
GateReport evaluate_gate(const std::vector<monitor::RunRecord>& runs, const GateOptions& o);

/// Where the reports go; an empty path is not written.
struct GateOutputs {
  std::string junit, tap, markdown;  ///< markdown is appended to
};

/// `spyglass gate` on an open history: reads the newest `runs` runs of `o.history.label`
/// and the label's pin, evaluates, prints the result to `out` (null: nowhere) and writes
/// the reports. Returns 0, kGateFailed, or 1 when the label has no runs or a report could
/// not be written (said on stderr). Throws InputError, monitor::HistoryError.
int run_gate(monitor::History& h, GateOptions o, std::size_t runs, const GateOutputs& files, std::FILE* out);

/// Writes the reports `files` names (an empty path is not written). Returns false when one
/// could not be written (said on stderr; the others are still written).
bool write_gate_reports(const GateReport& r, const GateOutputs& files);

/// JUnit XML: testsuites > testsuite > testcase, failures with message, measured value and threshold.
std::string gate_junit(const GateReport& r);
/// TAP version 14, with a YAML diagnostic block per failure.
std::string gate_tap(const GateReport& r);
/// A Markdown summary (a heading and a table), e.g. for GitHub's step summary.
std::string gate_markdown(const GateReport& r);
/// The lines `gate` prints.
std::string gate_text(const GateReport& r);

}  // namespace SPYGLASS_NAMESPACE::cli
