#pragma once
/// The run history: an SQLite file (the default) or a PostgreSQL database of runs, their
/// samples and (for analytics) alerts. Both hold the same schema, written by the same
/// migrations; on PostgreSQL, INTEGER columns are BIGINT, REAL is DOUBLE PRECISION, ids are
/// identity columns, and the schema version is spyglass_meta's 'user_version' row.
///
/// Schema (user_version 9, application_id 0x5350594c "SPYL"), all times in ns:
///   runs(id INTEGER PRIMARY KEY, label, command, args (JSON array), cwd, host, git_commit,
///        start_unix_ns, end_unix_ns, duration_ns, exit_code, signal, kill_reason, error,
///        user_cpu_ns, sys_cpu_ns, max_rss_bytes, peak_tree_rss_bytes, read_bytes,
///        write_bytes, rchar, wchar, peak_threads, peak_processes, vol_ctx, invol_ctx,
///        minflt, majflt, monitor_cpu_ns, stdout_tail, stderr_tail,
///        leftover_processes, leftovers_killed [since v3],
///        tree_source ('cgroup-v2', 'cgroup-v1', 'sampled'), tree_source_reason,
///        tree_peak_memory_bytes, peak_tree_pss_bytes, tree_user_cpu_ns, tree_sys_cpu_ns,
///        tree_read_bytes, tree_write_bytes, tree_peak_processes, max_rss_source [since v5;
///        runs recorded before are 'sampled' with the tree figures of their own columns]),
///        limit_timeout_ns, limit_max_rss_bytes, limit_max_cpu_seconds, limit_kill
///        ('graceful', 'immediate'), limit_grace_ns [since v8; NULL: no such limit, or a
///        run recorded before; see RunLimits]
///   samples(run_id -> runs.id ON DELETE CASCADE, t_ns (since the run's start),
///        processes, threads, fds, cpu_user_ns, cpu_sys_ns, cpu_user_pct, cpu_sys_pct,
///        rss_bytes, vms_bytes, pss_bytes, uss_bytes, read_bytes, write_bytes, rchar, wchar,
///        vol_ctx, invol_ctx, minflt, majflt; PRIMARY KEY (run_id, t_ns))
///   alerts(id INTEGER PRIMARY KEY, run_id -> runs.id ON DELETE CASCADE, label,
///        created_unix_ns, kind, metric, severity, value, baseline, message)   [since v2]
///   baselines(label PRIMARY KEY, run_id -> runs.id ON DELETE CASCADE, pinned_unix_ns)
///        [since v4]
///   detections(run_id -> runs.id ON DELETE CASCADE, offset_ns (since the run's start),
///        metric ('cpu', 'rss'), kind ('spike', 'leak'), value, score, detector
///        ('ewma', 'rolling-mad', 'growth'))   [since v6; see RunDetection]
///   alerts.rule (the rule's name) [since v7]
///   alert_deliveries(alert_id -> alerts.id ON DELETE CASCADE, channel (its name, never
///        its URL), attempt, unix_ns, outcome ('delivered', 'failed', 'abandoned'), detail)
///        [since v7]
///   run_metrics(run_id -> runs.id ON DELETE CASCADE, name, value, unit ('s', 'B' or '');
///        PRIMARY KEY (run_id, name)) [since v9; see RunMetric]
///   spyglass_meta(key PRIMARY KEY, value)
/// Indexes: runs(label, start_unix_ns), runs(start_unix_ns), alerts(label, created_unix_ns),
/// alerts(run_id), detections(run_id, offset_ns), and run_metrics' primary key (run_id, name).

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "spyglass/config.hpp"
#include "spyglass/monitor/record.hpp"

namespace SPYGLASS_NAMESPACE::monitor {

/// Why a history operation failed.
enum class HistoryErrorKind {
  not_a_database,  ///< the file is not SQLite at all (left untouched)
  foreign,         ///< SQLite, but not a spyglass history (left untouched)
  newer_schema,    ///< written by a newer spyglass
  older_schema,    ///< too old to read without migrating (read-only opens only)
  corrupt,         ///< SQLite reports corruption (left untouched)
  full,            ///< disk or file-size limit reached
  io,              ///< any other SQLite or file error
  bad_url,         ///< a postgresql:// URL libpq cannot parse
  unavailable,     ///< the PostgreSQL server cannot be reached, or the connection was lost
};

/// Thrown by History. what() is a complete message naming the file.
class SPYGLASS_API HistoryError : public std::runtime_error {
 public:
  HistoryError(HistoryErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  [[nodiscard]] HistoryErrorKind kind() const noexcept { return kind_; }

 private:
  HistoryErrorKind kind_;
};

/// Which runs to list.
struct HistoryQuery {
  std::string label;       ///< empty: every label
  std::size_t limit = 20;  ///< newest first
  /// Only runs started at or after this time (Unix-epoch ns).
  std::optional<std::int64_t> since_unix_ns = std::nullopt;
  bool with_tails = false;       ///< also load stdout/stderr tails
  bool with_detections = false;  ///< also load RunRecord::detections (a query per run)
  /// Also load command, args, cwd and host; without them (analytics needs none) a long
  /// read is several times cheaper, as the args are parsed by a query per run.
  bool with_invocation = true;
};

/// What to keep. Runs that fail either rule are deleted; runs in the older half of what
/// is kept have their samples thinned to at most `thin_to` points first.
struct RetentionPolicy {
  std::optional<std::size_t> keep_last_per_label;
  std::optional<double> max_age_days;
  std::size_t thin_to = 200;
};

/// What apply_retention() removed.
struct RetentionResult {
  std::uint64_t runs_deleted = 0;
  std::uint64_t samples_deleted = 0;
};

/// A run pinned as the baseline of its label.
struct PinnedBaseline {
  std::string label;                ///< the run's label
  std::int64_t run_id = 0;          ///< the pinned run
  std::int64_t pinned_unix_ns = 0;  ///< when it was pinned
};

/// One delivery attempt of a stored alert.
struct AlertDeliveryRecord {
  std::string channel;       ///< the channel's name (its URL, a secret, is never stored)
  int attempt = 1;           ///< 1 for the first
  std::int64_t unix_ns = 0;  ///< when it started
  std::string outcome;       ///< "delivered", "failed" or "abandoned"
  std::string detail;        ///< HTTP status, SMTP reply or the transfer error
};

/// A stored alert with its delivery attempts.
struct AlertRecord {
  std::int64_t id = 0;
  std::int64_t run_id = 0;  ///< 0: no run (not recorded)
  std::string label, rule;
  std::int64_t created_unix_ns = 0;
  std::string kind;  ///< the rule's condition
  std::string metric, severity, message;
  double value = 0, baseline = 0;  ///< NaN when none
  std::vector<AlertDeliveryRecord> deliveries;
};

/// Which alerts to list.
struct AlertQuery {
  std::string label;                          ///< empty: every label
  std::optional<std::int64_t> since_unix_ns;  ///< only those created at or after
  std::size_t limit = 100;                    ///< newest first
};

/// A label and how many runs it has.
struct LabelSummary {
  std::string label;
  std::uint64_t runs = 0;                 ///< runs recorded under it
  std::int64_t latest_start_unix_ns = 0;  ///< start of its newest run
};

/// A connection to a history database.
///
/// Not thread-safe: use one History per thread. Any number of processes may use the same
/// file at once (WAL mode, busy timeout, one IMMEDIATE transaction per write), and no
/// write is lost. A file that is not a spyglass history is reported and never modified.
/// The same holds for a PostgreSQL history shared by processes on many machines: one
/// transaction per write, ids from the database, migrations under an advisory lock.
class SPYGLASS_API History {
 public:
  /// The schema this build writes.
  static constexpr int kSchemaVersion = 9;
  /// The oldest schema a read-only open reads as it is (runs and samples are unchanged
  /// since version 1).
  static constexpr int kMinReadableSchemaVersion = 1;
  /// The database's application_id ("SPYL").
  static constexpr std::int32_t kApplicationId = 0x5350594c;

  struct Options {
    bool create = true;                   ///< create the file when missing (not its directory)
    int schema_version = kSchemaVersion;  ///< migrate up to this version (tests use older ones)
    int busy_timeout_ms = 30000;          ///< how long a writer waits for another (SQLite)
    /// Never write to the file: no creation, no WAL switch, no migration. A database of
    /// schema kMinReadableSchemaVersion..kSchemaVersion is read as it is, an empty one
    /// reads as no runs; insert() and apply_retention() throw. Works on a file and
    /// directory we cannot write.
    bool read_only = false;
  };

  /// Opens (creating and migrating when needed, unless read-only). An existing file is
  /// validated through a read-only connection before any writable one is opened, so a
  /// file that is not a spyglass history is never modified. `path` may instead be a
  /// `postgresql://user@host:port/db` (or `postgres://`) URL: the database must exist;
  /// its tables are created in the connection's schema. Throws HistoryError.
  static History open(const std::string& path, Options options);
  static History open(const std::string& path) { return open(path, Options{}); }

  History(History&&) noexcept;
  History& operator=(History&&) noexcept;
  ~History();

  /// The schema version of the open database.
  [[nodiscard]] int schema_version() const;
  /// Where the history is: the file, or the URL with its password hidden (for messages).
  [[nodiscard]] const std::string& location() const;

  /// Stores `r` (its id is ignored and set) and its samples in one transaction; sample
  /// times are stored relative to `t0_ns`. Returns the new id. Throws HistoryError.
  std::int64_t insert(RunRecord& r, std::span<const Sample> samples, std::uint64_t t0_ns);

  /// The id of the run recorded with `r`'s label, host, start, end and duration (to the
  /// nanosecond), or nullopt: whether an insert whose reply was lost (the connection
  /// dropped during COMMIT) did commit, so that a retry does not record the run twice.
  std::optional<std::int64_t> recorded_id(const RunRecord& r);

  /// Runs, newest first.
  std::vector<RunRecord> runs(const HistoryQuery& q);
  /// One run with its tails and detections; nullopt when there is no such id.
  std::optional<RunRecord> run(std::int64_t id);
  /// The samples of a run in time order (t_ns relative to the run's start).
  std::vector<Sample> samples(std::int64_t run_id);
  /// Up to `limit` runs of `label` older than run `before_id` that exited 0 without a
  /// limit kill, newest first: the baseline a run is compared with.
  std::vector<RunRecord> baseline(const std::string& label, std::int64_t before_id, std::size_t limit);

  /// Pins run `run_id` as the baseline of its label, replacing that label's earlier pin;
  /// nullopt when there is no such run. Retention keeps a pinned run. Throws HistoryError.
  std::optional<PinnedBaseline> pin_baseline(std::int64_t run_id);
  /// Removes the pin of `label`; false when it had none.
  bool unpin_baseline(const std::string& label);
  /// The pins, by label; only that of `label` when it is not empty.
  std::vector<PinnedBaseline> pinned_baselines(const std::string& label = {});

  /// Every label, the one with the newest run first (one indexed query, whatever the
  /// number of runs).
  std::vector<LabelSummary> labels();

  /// Thins and deletes according to `p` (never a pinned run). Throws HistoryError.
  RetentionResult apply_retention(const RetentionPolicy& p);

  /// Stores an alert and its delivery attempts in one transaction; returns its id (also
  /// set in `a`). Needs schema 7. Throws HistoryError.
  std::int64_t insert_alert(AlertRecord& a);
  /// Alerts with their deliveries, newest first (none before schema 7).
  std::vector<AlertRecord> alerts(const AlertQuery& q);
  /// When rule `rule` last alerted on `label` (for deduplication); nullopt: never.
  std::optional<std::int64_t> last_alert_unix_ns(const std::string& label, const std::string& rule);

 private:
  struct Impl;
  explicit History(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace SPYGLASS_NAMESPACE::monitor
