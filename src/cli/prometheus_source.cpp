// Range queries over HTTP (libcurl), answers read with simdjson.

#include "prometheus_source.hpp"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <memory>

#include "curl_lib.hpp"
#include "units.hpp"

namespace SPYGLASS_NAMESPACE::cli {

namespace {

std::string escaped(CURL* curl, const std::string& s) {
  const Curl& lib = curl_lib();
  char* e = lib.easy_escape(curl, s.c_str(), static_cast<int>(s.size()));
  if (e == nullptr) throw InputError("cannot encode the query");
  std::string out(e);
  lib.free(e);
  return out;
}

// Seconds as Prometheus reads them: a plain decimal with millisecond precision at most.
std::string seconds_text(double s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

// The shortest text that reads back as `v`: how Prometheus writes a sample's time.
std::string shortest(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// "{job="x", instance="y"}" for a result's metric object.
std::string labels_text(simdjson::dom::object metric) {
  std::string out = "{";
  for (auto field : metric) {
    if (out.size() > 1) out += ", ";
    out += std::string(field.key) + "=\"";
    std::string_view v;
    if (field.value.get_string().get(v) == simdjson::SUCCESS) out += v;
    out += '"';
  }
  return out + "}";
}

}  // namespace

std::optional<double> parse_time_argument(std::string_view s, double now) {
  if (s == "now") return now;
  if (s.substr(0, 4) == "now-") {
    const auto d = parse_seconds(s.substr(4));
    if (!d) return std::nullopt;
    return now - *d;
  }
  return parse_timestamp(s);
}

Series read_prometheus_series(const PrometheusQuery& q) {
  std::string base = q.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string where = "Prometheus at " + base + ": ";
  const Curl& lib = curl_lib();
  if (!lib.error.empty()) throw InputError(where + "cannot start an HTTP client: " + lib.error);
  CurlHandle curl(lib.easy_init());
  if (!curl) throw InputError(where + "cannot start an HTTP client");
  const std::string url = base + "/api/v1/query_range?query=" + escaped(curl.get(), q.query) +
                          "&start=" + seconds_text(q.start) + "&end=" + seconds_text(q.end) +
                          "&step=" + seconds_text(q.step);
  std::string body;
  char error[CURL_ERROR_SIZE] = {};
  lib.easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  lib.easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(q.timeout * 1000));
  lib.easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  lib.easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  lib.easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error);
  lib.easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  lib.easy_setopt(
      curl.get(), CURLOPT_WRITEFUNCTION,
      +[](char* p, std::size_t size, std::size_t n, void* user) -> std::size_t {
        static_cast<std::string*>(user)->append(p, size * n);
        return size * n;
      });
  const CURLcode rc = lib.easy_perform(curl.get());
  if (rc != CURLE_OK)
    throw InputError(where + "request failed: " + (error[0] != '\0' ? error : lib.easy_strerror(rc)));
  long status = 0;
  lib.easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);

  // Prometheus answers errors (400 bad query, 422 cannot execute, 503 overloaded) with a
  // JSON body naming the error: quote it when there is one.
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS) {
    throw InputError(where + "HTTP " + std::to_string(status) + ", and the answer is not JSON: '" +
                     body.substr(0, 200) + "'");
  }
  std::string_view state;
  if (doc["status"].get_string().get(state) != simdjson::SUCCESS)
    throw InputError(where + "HTTP " + std::to_string(status) + ", an answer without a status");
  if (state != "success") {
    std::string_view type, text;
    if (doc["errorType"].get_string().get(type) != simdjson::SUCCESS) type = "error";
    if (doc["error"].get_string().get(text) != simdjson::SUCCESS) text = "no reason given";
    throw InputError(where + "the query failed (" + std::string(type) + "): " + std::string(text));
  }
  std::string_view result_type;
  simdjson::dom::array result;
  if (doc["data"]["resultType"].get_string().get(result_type) != simdjson::SUCCESS ||
      doc["data"]["result"].get_array().get(result) != simdjson::SUCCESS)
    throw InputError(where + "an answer without data.resultType and data.result");
  if (result_type != "matrix")
    throw InputError(where + "expected a range vector (matrix), got a " + std::string(result_type));
  if (result.size() != 1) {
    std::string list;
    std::size_t shown = 0;
    for (auto r : result) {
      simdjson::dom::object metric;
      if (r["metric"].get_object().get(metric) != simdjson::SUCCESS) continue;
      if (shown++ == 5) {
        list += ", ...";
        break;
      }
      list += (list.empty() ? "" : ", ") + labels_text(metric);
    }
    if (result.size() == 0)
      throw InputError(where + "the query selects no series between start and end: '" + q.query + "'");
    throw InputError(
        where + "the query selects " + std::to_string(result.size()) +
        " series, one is needed (aggregate them, e.g. with sum(), or add label matchers): " + list);
  }
  simdjson::dom::array values;
  if (result.at(0)["values"].get_array().get(values) != simdjson::SUCCESS)
    throw InputError(where + "a series without values");
  Series s;
  std::size_t index = 0;
  for (auto point : values) {
    ++index;
    simdjson::dom::array pair;
    double t = 0;
    std::string_view text;
    if (point.get_array().get(pair) != simdjson::SUCCESS || pair.size() != 2 ||
        pair.at(0).get_double().get(t) != simdjson::SUCCESS ||
        pair.at(1).get_string().get(text) != simdjson::SUCCESS)
      throw InputError(where + "point " + std::to_string(index) + " is not [time, \"value\"]");
    double v = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    if (r.ec != std::errc() || r.ptr != text.data() + text.size() || !std::isfinite(v)) {
      // "NaN", "+Inf", "-Inf": not a value to analyse.
      ++s.missing;
      continue;
    }
    s.stamps.push_back(shortest(t));
    s.times.push_back(t);
    s.values.push_back(v);
    s.lines.push_back(index);
  }
  return s;
}

}  // namespace SPYGLASS_NAMESPACE::cli
