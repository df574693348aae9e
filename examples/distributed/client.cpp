// The client half of the distributed example: fetches /users/1 .. /users/N from the
// server with libcurl, each request a client span that sends its `traceparent`, all of
// them under one root span, so that the whole exchange is one trace across both processes.
//
//   distributed_client --url http://127.0.0.1:8080 [--requests N (3)] \
//       [--out DIR (./spyglass-out)] [--otlp http://localhost:4318]
//
// Prints each response and exits 1 when a request failed or a span was not delivered.

#include <curl/curl.h>

#include <spyglass/adapters/curl.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "common.hpp"

namespace {

[[noreturn]] void usage(const char* message, const std::string& arg = {}) {
  std::fprintf(stderr, "distributed_client: %s%s\n", message, arg.c_str());
  std::fprintf(stderr,
               "usage: distributed_client --url http://HOST:PORT [--requests N] [--out DIR] [--otlp URL]\n");
  std::exit(2);
}

struct Args {
  std::string url, requests = "3", out = "./spyglass-out", otlp;
};

Args parse(int argc, char** argv) {
  Args a;
  const std::string error = example::parse_flags(
      argc, argv, {{"--url", &a.url}, {"--requests", &a.requests}, {"--out", &a.out}, {"--otlp", &a.otlp}});
  if (!error.empty()) usage(error.c_str());
  if (a.url.empty()) usage("--url is required");
  return a;
}

std::size_t append(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// Fetches every user on one connection; returns how many requests failed.
int fetch_users(const std::string& base, int requests) {
  SPYGLASS_SCOPE("fetch_users");  // the root: one trace for the whole run
  CURL* easy = curl_easy_init();
  if (easy == nullptr) return requests;
  std::string body;
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT, 30L);
  int failures = 0;
  for (int id = 1; id <= requests; ++id) {
    const std::string url = base + "/users/" + std::to_string(id);
    body.clear();
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    // The span's name is the route, bounded; tracestate passes vendor data downstream.
    const CURLcode rc = spyglass::curl::perform(easy, "/users/{id}", nullptr, "example=distributed");
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
      std::fprintf(stderr, "distributed_client: %s: %s\n", url.c_str(), curl_easy_strerror(rc));
      ++failures;
    } else {
      std::printf("GET %s -> %ld %s\n", url.c_str(), status, body.c_str());
      if (status != 200) ++failures;
    }
  }
  curl_easy_cleanup(easy);
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  int requests = 0;
  try {
    requests = std::stoi(args.requests);
  } catch (const std::exception&) {
    requests = -1;
  }
  if (requests < 1 || requests > 1000) usage("--requests wants 1 to 1000, not ", args.requests);
  std::string base = args.url;
  while (!base.empty() && base.back() == '/') base.pop_back();

  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = 0;
  try {
    example::Telemetry telemetry("distributed-client", args.out, args.otlp);
    const int failures = fetch_users(base, requests);
    if (failures != 0) std::fprintf(stderr, "distributed_client: %d request(s) failed\n", failures);
    rc = telemetry.finish("distributed_client") && failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distributed_client: %s\n", e.what());
    rc = 1;
  }
  curl_global_cleanup();
  return rc;
}
