// A program that records custom metrics through the public function, from several threads
// and a forked child at once: `spyglass run` must read every line whole.
// `metric_writer outside` exits 0 when recording is refused (not under `spyglass run`).

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "spyglass/run_metric.hpp"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "outside") == 0) return spyglass::record_run_metric("x", 1) ? 1 : 0;
  bool ok = true;
  // What can make no valid line is refused without writing.
  ok &= !spyglass::record_run_metric("two words", 1);
  ok &= !spyglass::record_run_metric("nan", std::nan(""));
  ok &= !spyglass::record_run_metric("unit", 1, "m s");
  constexpr int kThreads = 8, kEach = 500;
  const pid_t child = ::fork();
  if (child == 0) {
    bool c = true;
    for (int i = 0; i < kEach; ++i) c &= spyglass::record_run_metric("forked", i, "KiB");
    ::_exit(c ? 0 : 1);
  }
  std::vector<std::thread> threads;
  std::vector<char> done(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &done] {
      bool c = true;
      const std::string name = "thread." + std::to_string(t);
      for (int i = 0; i < kEach; ++i) c &= spyglass::record_run_metric(name, i + 0.5, t == 0 ? "ms" : "");
      done[static_cast<std::size_t>(t)] = c ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  for (const char d : done) ok &= d != 0;
  int status = 0;
  ok &= ::waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  ok &= spyglass::record_run_metric("items_per_s", 1234.5);
  return ok ? 0 : 1;
}
