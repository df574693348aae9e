#pragma once
// Alerts: rules read from a JSON file, evaluated on a label's runs when a run ends and on
// live detections while it runs, and delivered to webhooks, Slack and SMTP with retries
// inside a time budget. A library of its own (spyglass_alerts), callable without the CLI.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "spyglass/monitor/history.hpp"
#include "spyglass/monitor/live.hpp"
#include "spyglass/monitor/record.hpp"

namespace SPYGLASS_NAMESPACE::alerts {

/// A rules file that cannot be used; what() is "FILE:LINE: FIELD: reason".
class RuleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What a rule watches.
enum class Condition {
  threshold,        ///< the run's metric against a fixed or adaptive limit
  anomaly,          ///< the run's metric is an outlier of its baseline (modified z-score)
  change_point,     ///< a significant shift began within the newest runs
  regression,       ///< the latest runs are slower than their baseline (Mann-Whitney + effect)
  forecast_breach,  ///< Holt's forecast reaches a limit within a horizon
  run_failed,       ///< the command failed (non-zero exit, a signal, or it could not start)
  killed_by_limit,  ///< a timeout, memory or CPU limit killed it
  spike,            ///< live: a CPU or memory spike while the run goes on
  leak,             ///< live: steady memory growth while the run goes on
};

/// The name used in rule files: "threshold", "change_point", "killed_by_limit", ...
const char* to_string(Condition c);

/// Where alerts go. Its URL and password come from the environment when they are
/// secrets and are never written anywhere: the history stores the channel's name.
struct Channel {
  enum class Type { webhook, slack, email };
  std::string name;
  Type type = Type::webhook;
  std::string url;                 ///< http(s) URL, or smtp(s)://host:port for email
  std::string from;                ///< email: the sender
  std::vector<std::string> to;     ///< email: the recipients
  std::string username, password;  ///< email: SMTP login, from the environment only
};

/// One rule of the file.
struct Rule {
  std::string name;
  std::string label;   ///< empty: every label
  std::string metric;  ///< a history metric (wall, max_rss, ...); cpu or rss for spike; empty: any
  Condition condition = Condition::threshold;
  std::string op = ">";                                     ///< threshold: >, >=, < or <=
  double value = std::numeric_limits<double>::quiet_NaN();  ///< threshold or forecast limit
  std::optional<double> adaptive_k;  ///< threshold: baseline median ± k·MAD instead of value
  double z = 3.5;                    ///< anomaly: modified z-score above which a run is flagged
  std::size_t baseline = 20;         ///< successful runs before the current one used as baseline
  std::size_t min_runs = 5;          ///< fewer baseline runs: the rule does not fire
  std::size_t recent = 5;            ///< change_point: how new the shift must be (runs)
  std::size_t window = 50;           ///< change_point: the newest runs searched
  std::size_t horizon = 10;          ///< forecast_breach: runs ahead
  std::string severity = "warning";  ///< info, warning or critical
  std::vector<std::string> channels;
  double dedup_seconds = 3600;  ///< the same rule and label alerts at most once per window
  std::size_t line = 0;         ///< where it starts in the file
};

/// How hard delivery tries.
struct DeliveryOptions {
  int attempts = 4;      ///< per channel and alert
  double backoff = 0.5;  ///< seconds before the 2nd attempt, doubled before each next one
  double timeout = 5;    ///< seconds per attempt (connection included)
  double budget = 10;    ///< seconds delivery may add to the end of a run, all alerts included
};

/// A parsed rules file.
struct RuleSet {
  std::string file;
  std::vector<Channel> channels;
  std::vector<Rule> rules;
  DeliveryOptions delivery;
  [[nodiscard]] const Channel* channel(std::string_view name) const;
};

/// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
/// The process environment.
std::optional<std::string> process_env(const std::string& name);

/// Parses a rules file's text; `file` names it in errors. `${NAME}` in a string is
/// replaced by the environment variable NAME. Throws RuleError naming line and field.
RuleSet parse_rules(std::string_view json, const std::string& file, const EnvLookup& env = process_env);
/// Reads and parses the file at `path`. Throws RuleError.
RuleSet load_rules(const std::string& path, const EnvLookup& env = process_env);

/// One alert raised by a rule.
struct Alert {
  std::string rule, label, metric, severity, message;
  Condition condition = Condition::threshold;
  std::int64_t run_id = 0;  ///< 0: not recorded (yet)
  std::int64_t created_unix_ns = 0;
  double value = std::numeric_limits<double>::quiet_NaN();      ///< what was measured
  double threshold = std::numeric_limits<double>::quiet_NaN();  ///< the limit or baseline it crossed
  std::vector<std::string> channels;
  double dedup_seconds = 0;
};

/// The alerts the rules raise for the run at the front of `runs` (a label's runs, newest
/// first, as History lists them). Each (rule, metric) pair's history analysis is computed
/// once whatever the number of rules.
std::vector<Alert> evaluate_run(const RuleSet& rules, const std::vector<monitor::RunRecord>& runs,
                                std::int64_t now_unix_ns);

/// The alerts the spike and leak rules raise for a live finding of a run of `label`.
std::vector<Alert> evaluate_live(const RuleSet& rules, const std::string& label,
                                 const analytics::LiveFinding& f, std::int64_t now_unix_ns);

/// Whether `a` may go out given when the same rule last alerted on its label (nullopt:
/// never): outside its dedup window.
bool outside_dedup(const Alert& a, std::optional<std::int64_t> last_unix_ns);

/// The generic webhook's JSON body (documented in the README).
std::string webhook_payload(const Alert& a);
/// Slack's incoming-webhook body: `text` (the fallback) and `blocks`.
std::string slack_payload(const Alert& a);
/// The RFC 5322 message sent over SMTP (CRLF line ends).
std::string email_message(const Alert& a, const Channel& c);

/// One delivery attempt of one alert to one channel.
struct Attempt {
  std::string channel;
  int attempt = 1;
  std::int64_t unix_ns = 0;
  std::string outcome;  ///< delivered, failed, or abandoned (the budget ran out first)
  std::string detail;   ///< HTTP status or the transfer error; never a URL
};

/// An alert and what became of it.
struct Delivered {
  Alert alert;
  std::vector<Attempt> attempts;
};

/// Delivers alerts on a thread per channel, so that neither sampling, the run, nor the
/// other channels wait on a slow one: submit() only queues. finish() bounds what remains by
/// the budget.
class Dispatcher {
 public:
  /// `rules` must outlive the dispatcher.
  explicit Dispatcher(const RuleSet& rules);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  /// Queues `a` for its channels. Never blocks on the network.
  void submit(Alert a);
  /// Waits for the queued alerts at most DeliveryOptions::budget seconds from now (an
  /// attempt in flight is cut at that deadline), then returns every alert with its attempts
  /// (grouped by channel) in submission order; alerts left undelivered get an `abandoned`
  /// attempt.
  std::vector<Delivered> finish();

 private:
  void work(std::size_t channel);
  std::vector<Attempt> deliver(const Alert& a, const Channel& c);
  [[nodiscard]] bool past_deadline() const;

  const RuleSet& rules_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::deque<std::size_t>> queues_;  // per channel: indices into done_
  std::vector<Delivered> done_;
  std::atomic<std::uint64_t> deadline_ns_{0};  // monotonic; set by finish(), 0 before
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

/// The alerts of one `spyglass run`: live findings while it runs, the run's rules when it
/// ends, deduplicated against the history, delivered, and stored with their outcomes.
class RunAlerts {
 public:
  /// `history` may be null (the run is not recorded: no dedup across runs, nothing
  /// stored). The last alert time of each rule on `label` is read now, so that on_live()
  /// never touches the history.
  RunAlerts(const RuleSet& rules, std::string label, monitor::History* history);
  /// A live finding: queues the alerts it raises. Called on the sampling thread.
  void on_live(const analytics::LiveFinding& f);
  /// The run ended (and is recorded when `runs` starts with it: the label's runs, newest
  /// first): evaluates the rules, waits for delivery within the budget, stores every
  /// alert with its attempts and returns them. Storage errors are said on stderr.
  std::vector<Delivered> finish(const std::vector<monitor::RunRecord>& runs, std::int64_t run_id);

 private:
  bool admit(const Alert& a);

  const RuleSet& rules_;
  std::string label_;
  monitor::History* history_;
  std::vector<std::pair<std::string, std::int64_t>> last_;  // rule -> last alert, this label
  Dispatcher dispatcher_;
};

/// One line per alert and its delivery outcomes, as `spyglass run` prints them.
std::string delivered_text(const std::vector<Delivered>& d);
/// `spyglass alerts`' table.
std::string alerts_text(const std::vector<monitor::AlertRecord>& a);
/// `spyglass alerts --json`: an array of alerts, each with its deliveries.
std::string alerts_json(const std::vector<monitor::AlertRecord>& a);

}  // namespace SPYGLASS_NAMESPACE::alerts
