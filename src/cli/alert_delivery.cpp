// Alert delivery: the webhook, Slack and SMTP payloads, and a dispatcher thread that
// retries with exponential backoff inside the run's delivery budget (libcurl).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <mutex>

#include "alerts.hpp"
#include "curl_lib.hpp"
#include "report.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/json.hpp"
#include "spyglass/log.hpp"
#include "spyglass/monitor/runner.hpp"

namespace SPYGLASS_NAMESPACE::alerts {

namespace {

std::string utc(std::int64_t unix_ns, const char* format) {
  const auto t = static_cast<std::time_t>(unix_ns / 1000000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

// Slack's mrkdwn and plain_text: &, < and > are the only characters to escape.
std::string slack_escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out += c;
    }
  }
  return out;
}

// A header value on one line: CR and LF would start a header of the sender's choosing.
std::string one_line(std::string_view s) {
  std::string out(s);
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
  return out;
}

// RFC 2047 encoded-word for a header with non-ASCII text.
std::string header_text(std::string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    return std::string(s);
  static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string b;
  for (std::size_t i = 0; i < s.size(); i += 3) {
    const auto byte = [&](std::size_t k) -> std::uint32_t {
      return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u;
    };
    const std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    b += kB64[(v >> 18) & 63];
    b += kB64[(v >> 12) & 63];
    b += i + 1 < s.size() ? kB64[(v >> 6) & 63] : '=';
    b += i + 2 < s.size() ? kB64[v & 63] : '=';
  }
  return "=?UTF-8?B?" + b + "?=";
}

std::string subject(const Alert& a) {
  std::string sev = a.severity;
  std::transform(sev.begin(), sev.end(), sev.begin(), [](unsigned char c) { return std::toupper(c); });
  return "[spyglass] " + sev + " " + a.rule + " on " + a.label;
}

std::size_t discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }

struct Upload {
  const std::string* data;
  std::size_t at = 0;
};

std::size_t read_upload(char* buf, std::size_t size, std::size_t n, void* p) {
  auto* u = static_cast<Upload*>(p);
  const std::size_t len = std::min(size * n, u->data->size() - u->at);
  std::copy_n(u->data->data() + u->at, len, buf);
  u->at += len;
  return len;
}

// Cuts a transfer in flight when the dispatcher's deadline passes.
int progress(void* p, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* deadline = static_cast<const std::atomic<std::uint64_t>*>(p);
  const std::uint64_t d = deadline->load();
  return d != 0 && clock::monotonic_ns() >= d ? 1 : 0;
}

std::int64_t unix_now_ns() { return static_cast<std::int64_t>(clock::realtime_ns()); }

}  // namespace

std::string webhook_payload(const Alert& a) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.key("source");
  w.value("spyglass");
  w.key("rule");
  w.value(a.rule);
  w.key("label");
  w.value(a.label);
  w.key("run_id");
  if (a.run_id != 0) {
    w.value(a.run_id);
  } else {
    w.null();
  }
  w.key("condition");
  w.value(to_string(a.condition));
  w.key("metric");
  if (a.metric.empty()) {
    w.null();
  } else {
    w.value(a.metric);
  }
  w.key("severity");
  w.value(a.severity);
  w.key("value");
  w.value(a.value);  // NaN (none) is written as null
  w.key("threshold");
  w.value(a.threshold);
  w.key("message");
  w.value(a.message);
  w.key("time");
  w.value(utc(a.created_unix_ns, "%Y-%m-%dT%H:%M:%SZ"));
  w.key("created_unix_ns");
  w.value(a.created_unix_ns);
  w.end_object();
  return out;
}

std::string slack_payload(const Alert& a) {
  std::string out;
  JsonWriter w(out);
  std::string header = a.severity + ": " + a.rule;
  if (header.size() > 150) header.resize(150);  // Slack's limit for a header block
  std::string context = "label *" + slack_escape(a.label) + "*";
  if (a.run_id != 0) context += " · run " + std::to_string(a.run_id);
  context += " · " + std::string(to_string(a.condition));
  if (!a.metric.empty()) context += " · " + slack_escape(a.metric);
  context += " · " + utc(a.created_unix_ns, "%Y-%m-%d %H:%M:%S UTC");
  w.begin_object();
  w.key("text");
  w.value(slack_escape(a.message));
  w.key("blocks");
  w.begin_array();
  w.begin_object();
  w.key("type");
  w.value("header");
  w.key("text");
  w.begin_object();
  w.key("type");
  w.value("plain_text");
  w.key("text");
  w.value(header);
  w.end_object();
  w.end_object();
  w.begin_object();
  w.key("type");
  w.value("section");
  w.key("text");
  w.begin_object();
  w.key("type");
  w.value("mrkdwn");
  w.key("text");
  w.value(slack_escape(a.message));
  w.end_object();
  w.end_object();
  w.begin_object();
  w.key("type");
  w.value("context");
  w.key("elements");
  w.begin_array();
  w.begin_object();
  w.key("type");
  w.value("mrkdwn");
  w.key("text");
  w.value(context);
  w.end_object();
  w.end_array();
  w.end_object();
  w.end_array();
  w.end_object();
  return out;
}

std::string email_message(const Alert& a, const Channel& c) {
  std::string to;
  for (const auto& r : c.to) to += (to.empty() ? "" : ", ") + one_line(r);
  std::string m;
  m += "Date: " + utc(a.created_unix_ns, "%a, %d %b %Y %H:%M:%S +0000") + "\r\n";
  m += "From: " + one_line(c.from) + "\r\n";
  m += "To: " + to + "\r\n";
  m += "Subject: " + header_text(one_line(subject(a))) + "\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n";
  m += one_line(a.message) + "\r\n\r\n";
  m += "rule: " + one_line(a.rule) + "\r\n";
  m += "label: " + one_line(a.label) + "\r\n";
  if (a.run_id != 0) m += "run: " + std::to_string(a.run_id) + "\r\n";
  m += "condition: " + std::string(to_string(a.condition)) + "\r\n";
  if (!a.metric.empty()) m += "metric: " + a.metric + "\r\n";
  m += "severity: " + a.severity + "\r\n";
  m += "time: " + utc(a.created_unix_ns, "%Y-%m-%dT%H:%M:%SZ") + "\r\n";
  return m;
}

Dispatcher::Dispatcher(const RuleSet& rules) : rules_(rules), queues_(rules.channels.size()) {
  (void)cli::curl_lib();  // loaded (and initialised) before the channels' threads start
  // The run's signals must reach the runner's signalfd, never a delivery thread (nor the
  // resolver threads libcurl starts from one, which inherit its mask).
  const monitor::AllSignalsBlocked quiet;
  for (std::size_t i = 0; i < rules_.channels.size(); ++i) workers_.emplace_back([this, i] { work(i); });
}

Dispatcher::~Dispatcher() {
  if (!stop_) finish();
}

bool Dispatcher::past_deadline() const {
  const std::uint64_t d = deadline_ns_.load();
  return d != 0 && clock::monotonic_ns() >= d;
}

void Dispatcher::submit(Alert a) {
  std::lock_guard lk(mu_);
  for (const auto& name : a.channels) {
    for (std::size_t i = 0; i < rules_.channels.size(); ++i) {
      if (rules_.channels[i].name == name) queues_[i].push_back(done_.size());
    }
  }
  done_.push_back({std::move(a), {}});
  cv_.notify_all();
}

std::vector<Delivered> Dispatcher::finish() {
  {
    std::lock_guard lk(mu_);
    deadline_ns_ = clock::monotonic_ns() + static_cast<std::uint64_t>(rules_.delivery.budget * 1e9);
    stop_ = true;
    cv_.notify_all();
  }
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
  std::lock_guard lk(mu_);
  return done_;
}

void Dispatcher::work(std::size_t channel) {
  const Channel& c = rules_.channels[channel];
  auto& queue = queues_[channel];
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stop_ || !queue.empty(); });
    if (queue.empty()) return;
    const std::size_t i = queue.front();
    queue.pop_front();
    const Alert a = done_[i].alert;
    lk.unlock();
    auto attempts = deliver(a, c);
    lk.lock();
    auto& to = done_[i].attempts;
    to.insert(to.end(), std::make_move_iterator(attempts.begin()), std::make_move_iterator(attempts.end()));
  }
}

std::vector<Attempt> Dispatcher::deliver(const Alert& alert, const Channel& c) {
  std::vector<Attempt> out;
  const DeliveryOptions& o = rules_.delivery;
  const std::string body = c.type == Channel::Type::webhook ? webhook_payload(alert)
                           : c.type == Channel::Type::slack ? slack_payload(alert)
                                                            : email_message(alert, c);
  for (int attempt = 1; attempt <= o.attempts; ++attempt) {
    Attempt at;
    at.channel = c.name;
    at.attempt = attempt;
    at.unix_ns = unix_now_ns();
    if (past_deadline()) {
      at.outcome = "abandoned";
      at.detail = "delivery budget of " + cli::format_number(o.budget, 3) + " s spent";
      log(LogLevel::warning, "alerts",
          "alert '" + alert.rule + "' to channel '" + c.name + "' abandoned: " + at.detail);
      out.push_back(std::move(at));
      return out;
    }
    // This attempt's time: the per-attempt timeout, cut at the deadline when one is set.
    double limit_s = o.timeout;
    if (const std::uint64_t dl = deadline_ns_.load(); dl != 0) {
      limit_s = std::min(limit_s, static_cast<double>(dl - std::min(dl, clock::monotonic_ns())) / 1e9);
    }
    const long limit_ms = std::max(1L, static_cast<long>(std::ceil(limit_s * 1000)));
    const cli::Curl& lib = cli::curl_lib();
    if (!lib.loaded()) {
      at.outcome = "failed";
      at.detail = "cannot start an HTTP client: " + lib.error;
      log(LogLevel::warning, "alerts",
          "alert '" + alert.rule + "' to channel '" + c.name + "' not delivered: " + at.detail);
      out.push_back(std::move(at));
      return out;
    }
    cli::CurlHandle handle(lib.easy_init());
    CURL* h = handle.get();
    curl_slist* headers = nullptr;
    curl_slist* rcpt = nullptr;
    Upload up{&body};
    lib.easy_setopt(h, CURLOPT_URL, c.url.c_str());
    lib.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    lib.easy_setopt(h, CURLOPT_TIMEOUT_MS, limit_ms);
    lib.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, limit_ms);
    lib.easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    lib.easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
    lib.easy_setopt(h, CURLOPT_XFERINFODATA, &deadline_ns_);
    lib.easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    if (c.type == Channel::Type::email) {
      const std::string from = "<" + c.from + ">";
      lib.easy_setopt(h, CURLOPT_MAIL_FROM, from.c_str());
      for (const auto& r : c.to) rcpt = lib.slist_append(rcpt, ("<" + r + ">").c_str());
      lib.easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
      if (!c.username.empty()) lib.easy_setopt(h, CURLOPT_USERNAME, c.username.c_str());
      if (!c.password.empty()) lib.easy_setopt(h, CURLOPT_PASSWORD, c.password.c_str());
      lib.easy_setopt(h, CURLOPT_READFUNCTION, read_upload);
      lib.easy_setopt(h, CURLOPT_READDATA, &up);
      lib.easy_setopt(h, CURLOPT_UPLOAD, 1L);
      lib.easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body.size()));
    } else {
      headers = lib.slist_append(headers, "Content-Type: application/json");
      lib.easy_setopt(h, CURLOPT_HTTPHEADER, headers);
      lib.easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
      lib.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    const CURLcode rc = lib.easy_perform(h);
    long status = 0;
    lib.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    lib.slist_free_all(headers);
    lib.slist_free_all(rcpt);
    handle.reset();
    // The transfer error's generic text, never curl's detailed buffer: that one may quote
    // the URL, whose path or query can hold a token.
    const bool http = c.type != Channel::Type::email;
    const bool ok = rc == CURLE_OK && (!http || (status >= 200 && status < 300));
    at.outcome = ok ? "delivered" : "failed";
    at.detail = rc == CURLE_ABORTED_BY_CALLBACK ? "cut at the end of the delivery budget"
                : rc != CURLE_OK                ? lib.easy_strerror(rc)
                : http                          ? "HTTP " + std::to_string(status)
                                                : "SMTP " + std::to_string(status);
    out.push_back(at);
    if (ok) return out;
    log(LogLevel::warning, "alerts",
        "alert '" + alert.rule + "' to channel '" + c.name + "': attempt " + std::to_string(attempt) +
            " of " + std::to_string(o.attempts) + " failed: " + at.detail);
    if (attempt == o.attempts) return out;
    // Exponential backoff, woken early by finish() so that the deadline is kept.
    const auto backoff_end =
        clock::monotonic_ns() + static_cast<std::uint64_t>(o.backoff * std::pow(2.0, attempt - 1) * 1e9);
    std::unique_lock lk(mu_);
    while (clock::monotonic_ns() < backoff_end && !past_deadline()) {
      std::uint64_t until = backoff_end;
      if (const std::uint64_t dl = deadline_ns_.load(); dl != 0) until = std::min(until, dl);
      const auto left = std::chrono::nanoseconds(until - std::min(until, clock::monotonic_ns()));
      const bool had_deadline = deadline_ns_.load() != 0;
      cv_.wait_for(lk, left, [&] { return !had_deadline && deadline_ns_.load() != 0; });
    }
  }
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::alerts
