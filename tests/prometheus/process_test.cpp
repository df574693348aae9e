// process_* numbers checked against independent readings: /proc/self/status,
// getrlimit, getrusage and descriptors and threads the test creates itself.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <latch>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "spyglass/exporters/prometheus.hpp"
#include "support.hpp"

namespace {

using spyglass::prom::read_process_stats;

const std::time_t kLoadTime = std::time(nullptr);  // close to the process start

/// A "Key:   123 kB" line of /proc/self/status, in its unit.
double status_field(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1));
  }
  return -1;
}

TEST(ProcessStats, ThreadsMatchStatusAndFollowThreadsStarted) {
  // A sanitizer may start a helper thread of its own with the process's first thread:
  // one thread started and joined first makes it exist before the count is taken.
  std::thread([] {}).join();
  const auto before = read_process_stats();
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(before->threads, status_field("Threads"));
  std::latch started(4);
  std::latch release(1);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&] {
      started.count_down();
      release.wait();
    });
  started.arrive_and_wait();
  const auto during = read_process_stats();
  release.count_down();
  for (auto& t : threads) t.join();
  ASSERT_TRUE(during.has_value());
  EXPECT_EQ(during->threads, before->threads + 3);
}

TEST(ProcessStats, OpenFdsCountDescriptorsAndMaxFdsIsTheSoftLimit) {
  const auto before = read_process_stats();
  ASSERT_TRUE(before.has_value());
  std::vector<int> fds;
  for (int i = 0; i < 10; ++i) fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  const auto during = read_process_stats();
  for (int fd : fds) close(fd);
  ASSERT_TRUE(during.has_value());
  EXPECT_EQ(during->open_fds, before->open_fds + 10);
  EXPECT_GE(before->open_fds, 3);  // stdin, stdout, stderr at least

  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur == RLIM_INFINITY) {
    EXPECT_TRUE(std::isinf(before->max_fds));
  } else {
    EXPECT_EQ(before->max_fds, static_cast<double>(rl.rlim_cur));
  }
}

TEST(ProcessStats, MemoryMatchesStatus) {
  const auto s = read_process_stats();
  const double vm_kb = status_field("VmSize");
  const double rss_kb = status_field("VmRSS");
  ASSERT_TRUE(s.has_value());
  ASSERT_GT(vm_kb, 0);
  ASSERT_GT(rss_kb, 0);
  // Read moments apart, so allow for a little allocation in between.
  EXPECT_NEAR(s->virtual_memory_bytes, vm_kb * 1024, 16.0 * 1024 * 1024);
  EXPECT_NEAR(s->resident_memory_bytes, rss_kb * 1024, 8.0 * 1024 * 1024);
  EXPECT_GT(s->resident_memory_bytes, 0);
}

/// Burns CPU until the calling thread has used `seconds` of it: CPU time, not wall time,
/// which on a loaded machine may hold far less CPU (gives up after 30 s of wall time).
void burn_thread_cpu(double seconds) {
  const auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  };
  const double start = cpu_now();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  volatile std::uint64_t x = 0;
  while (cpu_now() - start < seconds && std::chrono::steady_clock::now() < give_up) x = x + 1;
}

TEST(ProcessStats, CpuSecondsFollowGetrusage) {
  burn_thread_cpu(0.3);  // well above the tick granularity
  rusage ru{};
  ASSERT_EQ(getrusage(RUSAGE_SELF, &ru), 0);
  const auto s = read_process_stats();
  ASSERT_TRUE(s.has_value());
  const double rusage_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                          static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  EXPECT_GT(s->cpu_seconds, 0.1);
  EXPECT_NEAR(s->cpu_seconds, rusage_s, 0.1);
}

TEST(ProcessStats, StartTimeIsWhenTheProcessStarted) {
  const auto s = read_process_stats();
  ASSERT_TRUE(s.has_value());
  EXPECT_NEAR(s->start_time_seconds, static_cast<double>(kLoadTime), 5.0);
  EXPECT_LE(s->start_time_seconds, static_cast<double>(std::time(nullptr)) + 1);
}

/// CPU seconds of this process from getrusage().
double rusage_cpu_seconds() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

TEST(ProcessMetrics, EveryNameIsScrapedWithItsTypeAndAPlausibleValue) {
  spyglass::prom::PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  spyglass::prom::PrometheusExporter exp(o);
  burn_thread_cpu(0.1);  // some CPU time to see

  const double cpu_before = rusage_cpu_seconds();
  const double threads_before = status_field("Threads");
  const auto r = spyglass::test::http_get("http://127.0.0.1:" + std::to_string(exp.port()) + "/metrics");
  const double cpu_after = rusage_cpu_seconds();
  const double threads_after = status_field("Threads");
  ASSERT_EQ(r.status, 200) << r.error;
  const std::string& text = r.body;

  const std::map<std::string, std::string> types = {{"process_cpu_seconds_total", "counter"},
                                                    {"process_resident_memory_bytes", "gauge"},
                                                    {"process_virtual_memory_bytes", "gauge"},
                                                    {"process_open_fds", "gauge"},
                                                    {"process_max_fds", "gauge"},
                                                    {"process_start_time_seconds", "gauge"},
                                                    {"process_threads", "gauge"}};
  const auto m = spyglass::test::parse_exposition(text);
  for (const auto& [name, type] : types) {
    EXPECT_NE(text.find("\n# TYPE " + name + " " + type + "\n"), std::string::npos) << name << "\n" << text;
    EXPECT_NE(text.find("\n# HELP " + name + " "), std::string::npos) << name;
    EXPECT_EQ(m.count(name), 1u) << name;  // one unlabelled sample
  }
  const auto value = [&](const std::string& name) { return spyglass::test::sample(m, name); };

  // CPU time: what getrusage says around the scrape, within the clock tick of /proc.
  EXPECT_GT(value("process_cpu_seconds_total"), 0.05);
  EXPECT_GE(value("process_cpu_seconds_total"), cpu_before - 0.02);
  EXPECT_LE(value("process_cpu_seconds_total"), cpu_after + 0.02);
  // Memory: some MiB resident, no more than mapped.
  EXPECT_GT(value("process_resident_memory_bytes"), 1 << 20);
  EXPECT_LT(value("process_resident_memory_bytes"), 64.0 * (1 << 30));
  EXPECT_GE(value("process_virtual_memory_bytes"), value("process_resident_memory_bytes"));
  EXPECT_NEAR(value("process_resident_memory_bytes"), status_field("VmRSS") * 1024, 16.0 * 1024 * 1024);
  // Descriptors: stdio and the endpoint's socket at least, under the soft limit.
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur == RLIM_INFINITY) {
    EXPECT_TRUE(std::isinf(value("process_max_fds")));
  } else {
    EXPECT_EQ(value("process_max_fds"), static_cast<double>(rl.rlim_cur));
  }
  EXPECT_GE(value("process_open_fds"), 4);
  EXPECT_LT(value("process_open_fds"), value("process_max_fds"));
  // Started when this test binary did, not in the future.
  EXPECT_NEAR(value("process_start_time_seconds"), static_cast<double>(kLoadTime), 5.0);
  EXPECT_LE(value("process_start_time_seconds"), static_cast<double>(std::time(nullptr)) + 1);
  // Threads: this one and the endpoint's (a listener and server_threads workers).
  EXPECT_GE(value("process_threads"), 1.0 + static_cast<double>(o.server_threads));
  EXPECT_GE(value("process_threads"), std::min(threads_before, threads_after));
  EXPECT_LE(value("process_threads"), std::max(threads_before, threads_after));
}

}  // namespace
