// Alert rules: the rules file (simdjson On-Demand into a small tree that keeps each
// value's line) and their evaluation on a label's runs and on live findings.

#include "alerts.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "analyze.hpp"
#include "report.hpp"
#include "spyglass/monitor/analytics.hpp"
#include "spyglass/monitor/run_metrics.hpp"
#include "units.hpp"

namespace SPYGLASS_NAMESPACE::alerts {

namespace {

namespace od = simdjson::ondemand;
namespace an = analytics;

constexpr std::pair<std::string_view, Condition> kConditions[] = {
    {"threshold", Condition::threshold},
    {"anomaly", Condition::anomaly},
    {"change_point", Condition::change_point},
    {"regression", Condition::regression},
    {"forecast_breach", Condition::forecast_breach},
    {"run_failed", Condition::run_failed},
    {"killed_by_limit", Condition::killed_by_limit},
    {"spike", Condition::spike},
    {"leak", Condition::leak},
};

// A JSON value with the line it starts on.
struct Node {
  enum class Type { object, array, string, number, boolean, null } type = Type::null;
  std::size_t line = 0;
  std::string text;  // string (after ${ENV} substitution)
  double number = 0;
  bool boolean = false;
  bool from_env = false;                            // a string that was exactly one ${NAME}
  std::vector<std::pair<std::string, Node>> items;  // object members; array elements have empty keys
};

class Parser {
 public:
  Parser(std::string_view text, const std::string& file, const EnvLookup& env)
      : text_(text), file_(file), env_(env) {}

  Node parse() {
    const simdjson::padded_string buf(text_);
    base_ = seen_ = buf.data();
    seen_line_ = 1;
    od::parser parser;
    od::document doc;
    if (auto e = parser.iterate(buf).get(doc); e != simdjson::SUCCESS) syntax(e, nullptr);
    od::value root;
    if (auto e = doc.get_value().get(root); e != simdjson::SUCCESS) syntax(e, &doc);
    Node n = build(root, "", &doc);
    // current_location() fails at the end of the input; a location is trailing text.
    const char* rest = nullptr;
    if (doc.current_location().get(rest) == simdjson::SUCCESS)
      fail(line_of(rest), "", "not valid JSON: text after the top-level value");
    return n;
  }

  [[noreturn]] void fail(std::size_t line, const std::string& field, const std::string& why) const {
    std::string msg = file_;
    if (line != 0) msg += ":" + std::to_string(line);
    msg += ": ";
    if (!field.empty()) msg += field + ": ";
    throw RuleError(msg + why);
  }

 private:
  // Counts newlines from the last position asked about, as On-Demand reads forward: the
  // whole file is scanned once, not once per value.
  std::size_t line_of(const char* p) const {
    if (p == nullptr || p < base_ || p > base_ + text_.size()) return 0;
    if (p < seen_) {
      seen_ = base_;
      seen_line_ = 1;
    }
    seen_line_ += static_cast<std::size_t>(std::count(seen_, p, '\n'));
    seen_ = p;
    return seen_line_;
  }

  [[noreturn]] void syntax(simdjson::error_code e, od::document* doc) const {
    const char* at = nullptr;
    if (doc != nullptr) {
      if (doc->current_location().get(at) != simdjson::SUCCESS) at = nullptr;
    }
    fail(line_of(at), "", std::string("not valid JSON: ") + simdjson::error_message(e));
  }

  Node build(od::value v, const std::string& path, od::document* doc) {
    Node n;
    n.line = line_of(v.raw_json_token().data());
    od::json_type t;
    if (auto e = v.type().get(t); e != simdjson::SUCCESS) syntax(e, doc);
    switch (t) {
      case od::json_type::object: {
        n.type = Node::Type::object;
        od::object o;
        if (auto e = v.get_object().get(o); e != simdjson::SUCCESS) syntax(e, doc);
        for (auto field : o) {
          std::string_view key;
          if (auto e = field.unescaped_key().get(key); e != simdjson::SUCCESS) syntax(e, doc);
          od::value fv;
          if (auto e = field.value().get(fv); e != simdjson::SUCCESS) syntax(e, doc);
          const std::string k(key);
          n.items.emplace_back(k, build(fv, path.empty() ? k : path + "." + k, doc));
        }
        break;
      }
      case od::json_type::array: {
        n.type = Node::Type::array;
        od::array a;
        if (auto e = v.get_array().get(a); e != simdjson::SUCCESS) syntax(e, doc);
        std::size_t i = 0;
        for (auto el : a) {
          od::value ev;
          if (auto e = el.get(ev); e != simdjson::SUCCESS) syntax(e, doc);
          n.items.emplace_back("", build(ev, path + "[" + std::to_string(i++) + "]", doc));
        }
        break;
      }
      case od::json_type::string: {
        n.type = Node::Type::string;
        std::string_view s;
        if (auto e = v.get_string().get(s); e != simdjson::SUCCESS) syntax(e, doc);
        n.text = substitute(s, n.line, path, n.from_env);
        break;
      }
      case od::json_type::number:
        n.type = Node::Type::number;
        if (auto e = v.get_double().get(n.number); e != simdjson::SUCCESS) syntax(e, doc);
        break;
      case od::json_type::boolean:
        n.type = Node::Type::boolean;
        if (auto e = v.get_bool().get(n.boolean); e != simdjson::SUCCESS) syntax(e, doc);
        break;
      case od::json_type::null:
        if (auto e = v.is_null().error(); e != simdjson::SUCCESS) syntax(e, doc);
        break;
    }
    return n;
  }

  // ${NAME} -> the variable's value; $$ -> $. An unset variable is an error, not "".
  std::string substitute(std::string_view s, std::size_t line, const std::string& path, bool& whole) const {
    std::string out;
    whole = false;
    std::size_t refs = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '$' || i + 1 >= s.size()) {
        out += s[i];
        continue;
      }
      if (s[i + 1] == '$') {
        out += '$';
        ++i;
        continue;
      }
      if (s[i + 1] != '{') {
        out += s[i];
        continue;
      }
      const auto end = s.find('}', i + 2);
      if (end == std::string_view::npos) fail(line, path, "unterminated ${ in \"" + std::string(s) + "\"");
      const std::string name(s.substr(i + 2, end - i - 2));
      if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
          })) {
        fail(line, path, "bad environment variable name \"" + name + "\"");
      }
      const auto v = env_(name);
      if (!v) fail(line, path, "environment variable " + name + " is not set");
      out += *v;
      ++refs;
      if (i == 0 && end + 1 == s.size()) whole = true;
      i = end;
    }
    if (refs != 1) whole = false;
    return out;
  }

  std::string_view text_;
  const std::string& file_;
  const EnvLookup& env_;
  const char* base_ = nullptr;
  mutable const char* seen_ = nullptr;  // line_of(): where it last counted to
  mutable std::size_t seen_line_ = 1;   // and the line there
};

// Typed access to one object of the file, rejecting members nobody reads.
class Fields {
 public:
  Fields(const Parser& p, const Node& n, std::string path) : p_(p), n_(n), path_(std::move(path)) {
    if (n.type != Node::Type::object) p_.fail(n.line, path_, "expected an object");
  }
  const Node* find(std::string_view key) {
    seen_.emplace_back(key);
    for (const auto& [k, v] : n_.items) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  std::string where(std::string_view key) const { return path_ + "." + std::string(key); }
  [[noreturn]] void fail(const Node& v, std::string_view key, const std::string& why) const {
    p_.fail(v.line, where(key), why);
  }
  std::optional<std::string> str(std::string_view key) {
    const Node* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (v->type != Node::Type::string) fail(*v, key, "expected a string");
    return v->text;
  }
  std::string required(std::string_view key) {
    auto s = str(key);
    if (!s) p_.fail(n_.line, where(key), "missing");
    if (s->empty()) fail(*find(key), key, "must not be empty");
    return *s;
  }
  std::optional<double> number(std::string_view key, double min) {
    const Node* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (v->type != Node::Type::number) fail(*v, key, "expected a number");
    if (!(v->number >= min) || !std::isfinite(v->number))
      fail(*v, key, "must be a number of at least " + cli::format_number(min, 4));
    return v->number;
  }
  std::optional<std::size_t> count(std::string_view key, std::size_t min) {
    const auto v = number(key, static_cast<double>(min));
    if (!v) return std::nullopt;
    if (*v != std::floor(*v) || *v > 1e9) fail(*find(key), key, "expected a whole number");
    return static_cast<std::size_t>(*v);
  }
  // A duration: "30s", "1h", or a number of seconds.
  std::optional<double> seconds(std::string_view key) {
    const Node* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (v->type == Node::Type::number && v->number >= 0 && std::isfinite(v->number)) return v->number;
    if (v->type == Node::Type::string) {
      if (const auto s = cli::parse_seconds(v->text)) return *s;
    }
    fail(*v, key, std::string("not ") + cli::quantity_words("s"));
  }
  std::vector<std::string> strings(std::string_view key) {
    const Node* v = find(key);
    if (v == nullptr) return {};
    if (v->type == Node::Type::string) return {v->text};
    if (v->type != Node::Type::array) fail(*v, key, "expected a string or an array of strings");
    std::vector<std::string> out;
    for (const auto& [k, e] : v->items) {
      if (e.type != Node::Type::string || e.text.empty())
        p_.fail(e.line, where(key) + "[" + std::to_string(out.size()) + "]", "expected a non-empty string");
      out.push_back(e.text);
    }
    return out;
  }
  // Every member must have been asked for: a misspelt key is an error, not ignored.
  void done() const {
    for (const auto& [k, v] : n_.items) {
      if (std::find(seen_.begin(), seen_.end(), k) == seen_.end()) p_.fail(v.line, where(k), "unknown field");
    }
  }
  const Node& node() const { return n_; }

 private:
  const Parser& p_;
  const Node& n_;
  std::string path_;
  std::vector<std::string> seen_;
};

// A built-in metric, or a name a run can record a custom metric under.
bool is_history_metric(const std::string& m) {
  const auto names = cli::history_metric_names();
  return std::find(names.begin(), names.end(), m) != names.end() || monitor::valid_run_metric_name(m);
}

std::string metric_list() {
  std::string out;
  for (const auto& m : cli::history_metric_names()) out += (out.empty() ? "" : ", ") + m;
  return out + ", or a custom metric's name";
}

// A limit in the metric's unit: "2s", "512MiB", or a plain number of seconds or bytes.
double metric_limit(Fields& f, std::string_view key, const std::string& metric) {
  const Node* v = f.find(key);
  const std::string unit = cli::metric_unit(metric);  // "" for a custom metric: any number
  if (v->type == Node::Type::number && std::isfinite(v->number) && (v->number >= 0 || unit.empty()))
    return v->number;
  if (v->type == Node::Type::string) {
    if (const auto x = cli::parse_quantity(unit, v->text)) return *x;
  }
  f.fail(*v, key, std::string("not ") + cli::quantity_words(unit));
}

Channel parse_channel(const Parser& p, const std::string& name, const Node& n) {
  Fields f(p, n, "channels." + name);
  Channel c;
  c.name = name;
  const std::string type = f.required("type");
  if (type == "webhook") {
    c.type = Channel::Type::webhook;
  } else if (type == "slack") {
    c.type = Channel::Type::slack;
  } else if (type == "email") {
    c.type = Channel::Type::email;
  } else {
    f.fail(*f.find("type"), "type", "unknown channel type \"" + type + "\" (webhook, slack or email)");
  }
  c.url = f.required("url");
  const std::string_view scheme = c.type == Channel::Type::email ? "smtp" : "http";
  if (c.url.rfind(std::string(scheme) + "://", 0) != 0 && c.url.rfind(std::string(scheme) + "s://", 0) != 0) {
    f.fail(*f.find("url"), "url",
           "expected a " + std::string(scheme) + ":// or " + std::string(scheme) + "s:// URL");
  }
  if (c.type == Channel::Type::email) {
    c.from = f.required("from");
    c.to = f.strings("to");
    if (c.to.empty()) p.fail(n.line, "channels." + name + ".to", "missing");
    c.username = f.str("username").value_or("");
    if (const Node* pw = f.find("password")) {
      // A password in the file would end up in backups and diffs: only the environment.
      if (pw->type != Node::Type::string || !pw->from_env)
        f.fail(*pw, "password",
               "must be an environment reference such as \"${SMTP_PASSWORD}\", not a literal");
      c.password = pw->text;
    }
  }
  f.done();
  return c;
}

Rule parse_rule(const Parser& p, const RuleSet& set, const Node& n, std::size_t index) {
  const std::string path = "rules[" + std::to_string(index) + "]";
  Fields f(p, n, path);
  Rule r;
  r.line = n.line;
  r.name = f.required("name");
  const std::string cond = f.required("condition");
  const auto it = std::find_if(std::begin(kConditions), std::end(kConditions),
                               [&](const auto& c) { return c.first == cond; });
  if (it == std::end(kConditions)) {
    std::string names;
    for (const auto& c : kConditions) names += (names.empty() ? "" : ", ") + std::string(c.first);
    f.fail(*f.find("condition"), "condition", "unknown condition \"" + cond + "\" (" + names + ")");
  }
  r.condition = it->second;
  r.label = f.str("label").value_or("");
  if (r.label == "*") r.label.clear();
  const bool live = r.condition == Condition::spike || r.condition == Condition::leak;
  const bool run_state = r.condition == Condition::run_failed || r.condition == Condition::killed_by_limit;
  if (const auto m = f.str("metric")) {
    r.metric = *m;
    if (run_state) f.fail(*f.find("metric"), "metric", "a " + cond + " rule takes no metric");
    const bool ok = live ? (r.metric == "cpu" || r.metric == "rss") &&
                               !(r.condition == Condition::leak && r.metric == "cpu")
                         : is_history_metric(r.metric);
    if (!ok) {
      f.fail(*f.find("metric"), "metric",
             "unknown metric \"" + r.metric + "\" (" +
                 (live ? (r.condition == Condition::leak ? std::string("rss") : std::string("cpu or rss"))
                       : metric_list()) +
                 ")");
    }
  } else if (!live && !run_state) {
    p.fail(n.line, path + ".metric", "missing (" + metric_list() + ")");
  }
  if (r.condition == Condition::threshold) {
    if (const auto op = f.str("op")) {
      if (*op != ">" && *op != ">=" && *op != "<" && *op != "<=")
        f.fail(*f.find("op"), "op", "expected >, >=, < or <=, got \"" + *op + "\"");
      r.op = *op;
    }
    const Node* value = f.find("value");
    const Node* adaptive = f.find("adaptive");
    if ((value == nullptr) == (adaptive == nullptr))
      p.fail(n.line, path, "a threshold rule needs either \"value\" or \"adaptive\"");
    if (value != nullptr) r.value = metric_limit(f, "value", r.metric);
    if (adaptive != nullptr) {
      Fields a(p, *adaptive, path + ".adaptive");
      r.adaptive_k = a.number("k", 0).value_or(3.0);
      r.baseline = a.count("baseline", 2).value_or(r.baseline);
      r.min_runs = a.count("min_runs", 2).value_or(r.min_runs);
      a.done();
    }
  } else if (r.condition == Condition::forecast_breach) {
    if (f.find("limit") == nullptr) p.fail(n.line, path + ".limit", "missing");
    r.value = metric_limit(f, "limit", r.metric);
    r.horizon = f.count("horizon", 1).value_or(r.horizon);
  }
  if (r.condition == Condition::anomaly) r.z = f.number("z", 0).value_or(r.z);
  if (r.condition == Condition::change_point) r.recent = f.count("recent", 1).value_or(r.recent);
  if (r.condition == Condition::change_point) r.window = f.count("window", 10).value_or(r.window);
  if (!live && !run_state && r.condition != Condition::threshold) {
    r.baseline = f.count("baseline", 2).value_or(r.baseline);
    r.min_runs = f.count("min_runs", 2).value_or(r.min_runs);
  }
  if (const auto s = f.str("severity")) {
    if (*s != "info" && *s != "warning" && *s != "critical")
      f.fail(*f.find("severity"), "severity", "expected info, warning or critical, got \"" + *s + "\"");
    r.severity = *s;
  }
  r.channels = f.strings("channels");
  for (std::size_t i = 0; i < r.channels.size(); ++i) {
    if (set.channel(r.channels[i]) == nullptr) {
      const Node* ch = f.find("channels");
      const Node& at = ch->type == Node::Type::array ? ch->items[i].second : *ch;
      p.fail(at.line, path + ".channels", "unknown channel \"" + r.channels[i] + "\"");
    }
  }
  r.dedup_seconds = f.seconds("dedup").value_or(r.dedup_seconds);
  f.done();
  return r;
}

// A timeout, memory or CPU limit ended the run (not a signal passed on to it).
bool limit_killed(const monitor::RunRecord& r) {
  return r.kill_reason.rfind("timeout", 0) == 0 || r.kill_reason.rfind("max-", 0) == 0;
}

bool crosses(double v, const std::string& op, double limit) {
  if (op == ">") return v > limit;
  if (op == ">=") return v >= limit;
  if (op == "<") return v < limit;
  return v <= limit;
}

// The cuts the change-point search makes in a metric's newest runs before testing them.
struct Candidates {
  std::size_t runs = 0;           // successful runs searched
  std::vector<std::size_t> cuts;  // index into them
};

// What the rules need of one metric of the label, computed once per (metric, baseline size).
struct MetricHistory {
  std::vector<double> baseline;  // successful runs before the current one, oldest first
  std::optional<an::Forecast> forecast;
};

}  // namespace

const char* to_string(Condition c) {
  for (const auto& [name, value] : kConditions) {
    if (value == c) return name.data();
  }
  return "?";
}

const Channel* RuleSet::channel(std::string_view name) const {
  for (const auto& c : channels) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

RuleSet parse_rules(std::string_view json, const std::string& file, const EnvLookup& env) {
  Parser p(json, file, env);
  const Node root = p.parse();
  Fields top(p, root, "");
  RuleSet set;
  set.file = file;
  auto strip = [](std::string s) { return s.substr(1); };  // "" path: ".rules" -> "rules"
  if (const Node* ch = top.find("channels")) {
    if (ch->type != Node::Type::object) p.fail(ch->line, "channels", "expected an object of named channels");
    for (const auto& [name, n] : ch->items) set.channels.push_back(parse_channel(p, name, n));
  }
  if (const Node* d = top.find("delivery")) {
    Fields f(p, *d, "delivery");
    set.delivery.attempts = static_cast<int>(f.count("attempts", 1).value_or(4));
    set.delivery.backoff = f.seconds("backoff").value_or(set.delivery.backoff);
    set.delivery.timeout = f.seconds("timeout").value_or(set.delivery.timeout);
    set.delivery.budget = f.seconds("budget").value_or(set.delivery.budget);
    if (!(set.delivery.timeout > 0)) f.fail(*f.find("timeout"), "timeout", "must be more than 0");
    f.done();
  }
  const Node* rules = top.find("rules");
  if (rules == nullptr) p.fail(root.line, "rules", "missing");
  if (rules->type != Node::Type::array) p.fail(rules->line, strip(top.where("rules")), "expected an array");
  for (std::size_t i = 0; i < rules->items.size(); ++i) {
    set.rules.push_back(parse_rule(p, set, rules->items[i].second, i));
    for (std::size_t j = 0; j < i; ++j) {
      if (set.rules[j].name == set.rules[i].name)
        p.fail(set.rules[i].line, "rules[" + std::to_string(i) + "].name",
               "duplicate rule name \"" + set.rules[i].name + "\"");
    }
  }
  for (const auto& [k, v] : root.items) {
    if (k != "channels" && k != "delivery" && k != "rules") p.fail(v.line, k, "unknown field");
  }
  return set;
}

RuleSet load_rules(const std::string& path, const EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuleError(path + ": cannot read: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_rules(ss.str(), path, env);
}

std::vector<Alert> evaluate_run(const RuleSet& rules, const std::vector<monitor::RunRecord>& runs,
                                std::int64_t now_unix_ns) {
  std::vector<Alert> out;
  if (runs.empty()) return out;
  const monitor::RunRecord& cur = runs.front();
  std::size_t max_horizon = 1;
  for (const Rule& r : rules.rules) max_horizon = std::max(max_horizon, r.horizon);
  std::map<std::pair<std::string, std::size_t>, MetricHistory> cache;
  auto history = [&](const Rule& r) -> MetricHistory& {
    MetricHistory& h = cache[{r.metric, r.baseline}];
    if (h.baseline.empty()) {
      for (std::size_t i = 1; i < runs.size() && h.baseline.size() < r.baseline; ++i) {
        // A custom metric a run did not record is no point of the baseline.
        const double v = cli::successful_run(runs[i]) ? cli::history_metric(runs[i], r.metric) : NAN;
        if (!std::isnan(v)) h.baseline.push_back(v);
      }
      std::reverse(h.baseline.begin(), h.baseline.end());
    }
    return h;
  };
  // gate's analyses: the regression test over every run given, change points (PELT and a
  // permutation test, the costly part) only for change-point rules, over their `window`.
  std::map<std::tuple<std::string, std::size_t, std::size_t, bool>, cli::MetricCheck> checks;
  auto check = [&](const Rule& r, bool change_points) -> const cli::MetricCheck& {
    // A change-point check reads its window only; a regression check all runs and its baseline.
    const auto key =
        std::tuple(r.metric, change_points ? r.window : 0, change_points ? 0 : r.baseline, change_points);
    if (const auto it = checks.find(key); it != checks.end()) return it->second;
    cli::HistoryAnalyzeOptions o;
    o.label = cur.label;
    o.baseline = r.baseline;
    const std::span<const monitor::RunRecord> all(runs);
    const auto which = change_points ? cli::MetricChecks::change_points : cli::MetricChecks::regression;
    const auto searched = change_points ? all.first(std::min(r.window, all.size())) : all;
    return checks.emplace(key, cli::check_metric(searched, r.metric, o, which)).first->second;
  };
  // Where change points may be, per (metric, window): the segmentation without its
  // permutation test, which only drops cuts. The test, most of a change-point rule's
  // cost, runs only when one of these cuts is recent enough to raise the alert.
  std::map<std::pair<std::string, std::size_t>, Candidates> candidates;
  auto candidates_of = [&](const Rule& r) -> const Candidates& {
    const auto key = std::pair(r.metric, r.window);
    if (const auto it = candidates.find(key); it != candidates.end()) return it->second;
    Candidates c;
    // The successful runs of the window, oldest first, as check_metric reads them.
    std::vector<double> values;
    for (std::size_t i = std::min(runs.size(), r.window); i-- > 0;) {
      if (cli::successful_run(runs[i])) values.push_back(cli::history_metric(runs[i], r.metric));
    }
    c.runs = values.size();
    if (values.size() >= 3) {
      an::ChangePointOptions o;
      o.permutations = 0;
      for (const auto& cp : an::change_points(values, o)) c.cuts.push_back(cp.index);
    }
    return candidates.emplace(key, std::move(c)).first->second;
  };
  // An alert's words, the same for every rule on one check: (check, change point's index
  // or npos for the regression).
  std::map<std::pair<const cli::MetricCheck*, std::size_t>, std::string> check_text;
  const std::string run = cur.id != 0 ? "run " + std::to_string(cur.id) : "the run";
  for (const Rule& r : rules.rules) {
    if (!r.label.empty() && r.label != cur.label) continue;
    Alert a;  // the value, threshold and message here; the rest once it fires
    bool fire = false;
    switch (r.condition) {  // each case says why only once it fires: most rules stay quiet
      case Condition::threshold: {
        a.value = cli::history_metric(cur, r.metric);
        if (std::isnan(a.value)) break;  // a custom metric this run did not record
        if (r.adaptive_k) {
          const auto& b = history(r).baseline;
          if (b.size() < r.min_runs) break;
          const double med = an::median(b), mad = an::mad(b);
          const bool above = r.op[0] == '>';
          a.threshold = above ? med + *r.adaptive_k * mad : med - *r.adaptive_k * mad;
          fire = crosses(a.value, r.op, a.threshold);
          if (!fire) break;
          a.message = r.metric + " " + cli::metric_text(r.metric, a.value, runs) + " in " + run + " " + r.op +
                      " " + cli::metric_text(r.metric, a.threshold, runs) + " (baseline median " +
                      cli::metric_text(r.metric, med, runs) + (above ? " + " : " - ") +
                      cli::format_number(*r.adaptive_k, 4) + " x MAD " +
                      cli::metric_text(r.metric, mad, runs) + " over " + std::to_string(b.size()) + " runs)";
        } else {
          a.threshold = r.value;
          fire = crosses(a.value, r.op, r.value);
          if (!fire) break;
          a.message = r.metric + " " + cli::metric_text(r.metric, a.value, runs) + " in " + run + " " + r.op +
                      " " + cli::metric_text(r.metric, r.value, runs);
        }
        break;
      }
      case Condition::anomaly: {
        const auto& b = history(r).baseline;
        if (b.size() < r.min_runs) break;
        a.value = cli::history_metric(cur, r.metric);
        if (std::isnan(a.value)) break;
        a.threshold = an::median(b);
        const double z = an::anomaly_score(b, a.value, an::AnomalyMethod::modified_zscore);
        fire = std::abs(z) > r.z;
        if (!fire) break;
        a.message = r.metric + " " + cli::metric_text(r.metric, a.value, runs) + " in " + run +
                    " is an outlier: modified z-score " + cli::format_number(z, 3) + " against the median " +
                    cli::metric_text(r.metric, a.threshold, runs) + " of " + std::to_string(b.size()) +
                    " runs";
        break;
      }
      case Condition::change_point: {
        const auto& k = candidates_of(r);
        if (k.runs < r.min_runs ||
            std::none_of(k.cuts.begin(), k.cuts.end(), [&](std::size_t i) { return i + r.recent >= k.runs; }))
          break;  // no cut is recent: the test could only drop cuts, none of which would fire
        const auto& c = check(r, true);
        const std::size_t n = c.run_ids.size();
        if (n < r.min_runs) break;
        for (const auto& cp : c.change_points) {
          if (cp.index + r.recent < n) continue;
          fire = true;
          a.value = cp.mean_after;
          a.threshold = cp.mean_before;
          auto& text = check_text[{&c, cp.index}];
          if (text.empty()) {
            text = r.metric + " " + (cp.relative_change >= 0 ? "rose " : "fell ") +
                   cli::format_change(cp.relative_change) + " starting at run " +
                   std::to_string(c.run_ids[cp.index]) + " (mean " +
                   cli::metric_text(r.metric, cp.mean_before, runs) + " -> " +
                   cli::metric_text(r.metric, cp.mean_after, runs) + ", p " +
                   cli::format_number(cp.p_value, 3) + ")";
          }
          a.message = text;
        }
        break;
      }
      case Condition::regression: {
        const auto& c = check(r, false);
        if (!c.regression) break;
        const auto& g = c.regression->result;
        fire = g.regressed;
        if (!fire) break;
        a.value = g.current_median;
        a.threshold = g.baseline_median;
        auto& text = check_text[{&c, std::string::npos}];
        if (text.empty()) {
          text = r.metric + ": median " + cli::metric_text(r.metric, g.current_median, runs) +
                 " of the latest " + std::to_string(c.regression->current) + " runs vs " +
                 cli::metric_text(r.metric, g.baseline_median, runs) + " (" +
                 cli::format_change(g.relative_change) + "), Mann-Whitney p " +
                 cli::format_number(g.mann_whitney.p_value, 3);
        }
        a.message = text;
        break;
      }
      case Condition::forecast_breach: {
        auto& h = history(r);
        auto series = h.baseline;
        if (cli::successful_run(cur) && !std::isnan(cli::history_metric(cur, r.metric)))
          series.push_back(cli::history_metric(cur, r.metric));
        if (series.size() < std::max<std::size_t>(r.min_runs, 3)) break;
        // One fit per metric; each rule only asks when its limit is reached.
        if (!h.forecast) h.forecast = an::holt(series, max_horizon);
        auto steps = an::steps_to_limit(*h.forecast, r.value);
        if (steps && *steps > r.horizon) steps.reset();
        a.value = series.back();
        a.threshold = r.value;
        if (!steps || series.back() >= r.value) break;
        fire = true;
        a.message = r.metric + " reaches " + cli::metric_text(r.metric, r.value, runs) + " in about " +
                    std::to_string(*steps) + " runs (Holt's forecast from " +
                    cli::metric_text(r.metric, a.value, runs) + " over " + std::to_string(series.size()) +
                    " runs)";
        break;
      }
      case Condition::run_failed:
        fire = !cur.error.empty() || (!limit_killed(cur) && (cur.exit_code != 0 || cur.signal != 0));
        if (!fire) break;
        a.value = cur.exit_code;
        a.message = !cur.error.empty() ? run + " could not start: " + cur.error
                    : cur.signal != 0  ? run + " ended by signal " + std::to_string(cur.signal)
                                       : run + " exited with " + std::to_string(cur.exit_code);
        break;
      case Condition::killed_by_limit:
        fire = limit_killed(cur);
        if (!fire) break;
        a.message = run + " killed by a limit: " + cur.kill_reason;
        break;
      case Condition::spike:
      case Condition::leak: break;  // live rules: evaluate_live()
    }
    if (fire) {
      a.rule = r.name;
      a.label = cur.label;
      a.metric = r.metric;
      a.severity = r.severity;
      a.condition = r.condition;
      a.run_id = cur.id;
      a.created_unix_ns = now_unix_ns;
      a.channels = r.channels;
      a.dedup_seconds = r.dedup_seconds;
      a.message = "[" + r.name + "] " + a.label + ": " + a.message;
      out.push_back(std::move(a));
    }
  }
  return out;
}

std::vector<Alert> evaluate_live(const RuleSet& rules, const std::string& label,
                                 const analytics::LiveFinding& f, std::int64_t now_unix_ns) {
  std::vector<Alert> out;
  const std::string_view kind = f.kind;
  for (const Rule& r : rules.rules) {
    if (!r.label.empty() && r.label != label) continue;
    if (!((r.condition == Condition::spike && kind == "spike") ||
          (r.condition == Condition::leak && kind == "leak")))
      continue;
    if (!r.metric.empty() && r.metric != f.metric) continue;
    Alert a;
    a.rule = r.name;
    a.label = label;
    a.metric = f.metric;
    a.severity = r.severity;
    a.condition = r.condition;
    a.created_unix_ns = now_unix_ns;
    a.channels = r.channels;
    a.dedup_seconds = r.dedup_seconds;
    a.value = f.value;
    a.threshold = f.score;
    const bool cpu = a.metric == "cpu";
    const std::string value = cpu ? cli::format_number(f.value, 3) + "% CPU"
                                  : cli::format_bytes(static_cast<std::uint64_t>(std::max(0.0, f.value)));
    a.message = "[" + r.name + "] " + label + ": " +
                (kind == "leak" ? "memory growing steadily (" +
                                      cli::format_bytes(static_cast<std::uint64_t>(std::max(0.0, f.score))) +
                                      "/s), RSS " + value
                                : std::string(cpu ? "CPU" : "memory") + " spike to " + value + " (" +
                                      f.detector + " score " + cli::format_number(f.score, 3) + ")") +
                " at " + cli::format_number(f.t, 3) + " s, while the run goes on";
    out.push_back(std::move(a));
  }
  return out;
}

bool outside_dedup(const Alert& a, std::optional<std::int64_t> last_unix_ns) {
  if (!last_unix_ns) return true;
  return static_cast<double>(a.created_unix_ns - *last_unix_ns) >= a.dedup_seconds * 1e9;
}

}  // namespace SPYGLASS_NAMESPACE::alerts
