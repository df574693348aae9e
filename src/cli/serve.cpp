// `spyglass serve`: one read-only History behind a mutex (History is one connection per
// thread), pages rendered per request, stopped by SIGINT or SIGTERM through sigwait.

#include "serve.hpp"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "http/exclusive_port.hpp"

namespace SPYGLASS_NAMESPACE::cli {

int serve_history(const std::string& db, const std::string& host, int port, const PageOptions& o) {
  monitor::History history = monitor::History::open(db, {.create = false, .read_only = true});
  std::mutex mu;

  // Block the stop signals here, before the server's threads exist, so that only the
  // waiter below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  httplib::Server server;
  // A port already in use is reported, not shared.
  http::detail::listen_exclusively(server);
  // Read-only: another method than GET or HEAD gets 405 and the methods there are.
  server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "GET" || req.method == "HEAD") return httplib::Server::HandlerResponse::Unhandled;
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
    res.set_header("Cache-Control", "no-store");
    res.set_content(
        "<!DOCTYPE html><html><head><title>method not allowed</title><link rel=\"icon\" "
        "href=\"data:,\"></head><body><p>the history is read-only: GET and HEAD only</p></body>"
        "</html>\n",
        "text/html; charset=utf-8");
    return httplib::Server::HandlerResponse::Handled;
  });
  server.Get(".*", [&](const httplib::Request& req, httplib::Response& res) {
    std::map<std::string, std::string> params;
    for (const auto& [k, v] : req.params) params.emplace(k, v);
    Page page;
    try {
      const std::lock_guard<std::mutex> lock(mu);
      page = serve_page(history, req.path, params, o);
    } catch (const std::exception& e) {
      page.status = 500;
      page.body = std::string(
                      "<!DOCTYPE html><html><head><title>error</title><link rel=\"icon\" href=\"data:,\">"
                      "</head><body><p>cannot read the history: ") +
                  e.what() + "</p></body></html>\n";
      std::fprintf(stderr, "spyglass: error: %s\n", e.what());
    }
    res.status = page.status;
    res.set_header("Cache-Control", "no-store");
    res.set_content(std::move(page.body), "text/html; charset=utf-8");
  });

  const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
    std::fprintf(stderr, "spyglass: error: cannot listen on %s:%d: %s\n", host.c_str(), port,
                 std::strerror(errno));
    return 1;
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop, &sig);
    server.stop();
  });
  const bool v6 = host.find(':') != std::string::npos;
  std::printf("serving http://%s%s%s:%d/ (history %s)\n", v6 ? "[" : "", host.c_str(), v6 ? "]" : "", bound,
              db.c_str());
  std::fflush(stdout);
  server.listen_after_bind();
  // The server stopped: wake the waiter if no signal did.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return 0;
}

}  // namespace SPYGLASS_NAMESPACE::cli
