// The alerts of one `spyglass run` (dedup, delivery, storage) and the listings of
// `spyglass alerts`.

#include <cmath>
#include <cstdio>

#include "alerts.hpp"
#include "report.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/json.hpp"

namespace SPYGLASS_NAMESPACE::alerts {

namespace {

std::int64_t now_ns() { return static_cast<std::int64_t>(clock::realtime_ns()); }

// "slack delivered (attempt 2); mail failed after 4 attempts: Couldn't connect to server"
std::string outcome_text(const std::vector<monitor::AlertDeliveryRecord>& attempts) {
  std::string out;
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    const bool last_of_channel = i + 1 == attempts.size() || attempts[i + 1].channel != attempts[i].channel;
    if (!last_of_channel) continue;
    const auto& a = attempts[i];
    if (!out.empty()) out += "; ";
    out += a.channel + " " + a.outcome;
    if (a.outcome == "delivered") {
      out += " (attempt " + std::to_string(a.attempt) + ")";
    } else {
      out += " after " + std::to_string(a.attempt) + (a.attempt == 1 ? " attempt" : " attempts");
      if (!a.detail.empty()) out += ": " + a.detail;
    }
  }
  return out.empty() ? "no channel" : out;
}

std::vector<monitor::AlertDeliveryRecord> records(const std::vector<Attempt>& attempts) {
  std::vector<monitor::AlertDeliveryRecord> out;
  for (const auto& a : attempts) out.push_back({a.channel, a.attempt, a.unix_ns, a.outcome, a.detail});
  return out;
}

}  // namespace

RunAlerts::RunAlerts(const RuleSet& rules, std::string label, monitor::History* history)
    : rules_(rules), label_(std::move(label)), history_(history), dispatcher_(rules) {
  if (history_ == nullptr) return;
  for (const auto& r : rules_.rules) {
    if (!r.label.empty() && r.label != label_) continue;
    try {
      if (const auto t = history_->last_alert_unix_ns(label_, r.name)) last_.emplace_back(r.name, *t);
    } catch (const monitor::HistoryError& e) {
      std::fprintf(stderr, "spyglass: warning: alerts: %s\n", e.what());
    }
  }
}

bool RunAlerts::admit(const Alert& a) {
  for (auto& [rule, t] : last_) {
    if (rule != a.rule) continue;
    if (!outside_dedup(a, t)) return false;
    t = a.created_unix_ns;
    return true;
  }
  last_.emplace_back(a.rule, a.created_unix_ns);
  return true;
}

void RunAlerts::on_live(const analytics::LiveFinding& f) {
  for (auto& a : evaluate_live(rules_, label_, f, now_ns())) {
    if (admit(a)) dispatcher_.submit(std::move(a));
  }
}

std::vector<Delivered> RunAlerts::finish(const std::vector<monitor::RunRecord>& runs, std::int64_t run_id) {
  for (auto& a : evaluate_run(rules_, runs, now_ns())) {
    if (admit(a)) dispatcher_.submit(std::move(a));
  }
  auto done = dispatcher_.finish();
  for (auto& d : done) {
    d.alert.run_id = run_id;
    if (history_ == nullptr || run_id == 0) continue;
    monitor::AlertRecord r;
    r.run_id = run_id;
    r.label = d.alert.label;
    r.rule = d.alert.rule;
    r.created_unix_ns = d.alert.created_unix_ns;
    r.kind = to_string(d.alert.condition);
    r.metric = d.alert.metric;
    r.severity = d.alert.severity;
    r.message = d.alert.message;
    r.value = d.alert.value;
    r.baseline = d.alert.threshold;
    r.deliveries = records(d.attempts);
    try {
      history_->insert_alert(r);
    } catch (const monitor::HistoryError& e) {
      std::fprintf(stderr, "spyglass: warning: alert not saved to history: %s\n", e.what());
    }
  }
  return done;
}

std::string delivered_text(const std::vector<Delivered>& d) {
  std::string out;
  for (const auto& x : d) {
    out += "spyglass: alert " + x.alert.severity + ": " + x.alert.message + "\n";
    out += "  -> " + outcome_text(records(x.attempts)) + "\n";
  }
  return out;
}

std::string alerts_text(const std::vector<monitor::AlertRecord>& alerts) {
  if (alerts.empty()) return "no alerts\n";
  std::string out;
  for (const auto& a : alerts) {
    out += "#" + std::to_string(a.id) + "  " + cli::format_time(a.created_unix_ns) + "  " + a.severity +
           "  " + a.rule + " (" + a.kind + (a.metric.empty() ? "" : " " + a.metric) + ")  " + a.label;
    if (a.run_id != 0) out += "  run " + std::to_string(a.run_id);
    out += "\n    " + a.message + "\n    " + outcome_text(a.deliveries) + "\n";
  }
  return out;
}

std::string alerts_json(const std::vector<monitor::AlertRecord>& alerts) {
  std::string out;
  JsonWriter w(out);
  w.begin_array();
  for (const auto& a : alerts) {
    w.begin_object();
    w.key("id");
    w.value(a.id);
    w.key("run_id");
    if (a.run_id != 0) {
      w.value(a.run_id);
    } else {
      w.null();
    }
    w.key("label");
    w.value(a.label);
    w.key("rule");
    w.value(a.rule);
    w.key("condition");
    w.value(a.kind);
    w.key("metric");
    if (a.metric.empty()) {
      w.null();
    } else {
      w.value(a.metric);
    }
    w.key("severity");
    w.value(a.severity);
    w.key("value");
    w.value(a.value);  // NaN is written as null
    w.key("threshold");
    w.value(a.baseline);
    w.key("message");
    w.value(a.message);
    w.key("created_unix_ns");
    w.value(a.created_unix_ns);
    w.key("deliveries");
    w.begin_array();
    for (const auto& d : a.deliveries) {
      w.begin_object();
      w.key("channel");
      w.value(d.channel);
      w.key("attempt");
      w.value(d.attempt);
      w.key("unix_ns");
      w.value(d.unix_ns);
      w.key("outcome");
      w.value(d.outcome);
      w.key("detail");
      w.value(d.detail);
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  w.end_array();
  out += "\n";
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::alerts
