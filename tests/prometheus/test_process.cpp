// process_* numbers checked against independent readings: /proc/self/status,
// getrlimit, getrusage and descriptors and threads the test creates itself.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "spyglass/exporters/prometheus.hpp"

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

TEST(ProcessStats, CpuSecondsFollowGetrusage) {
  // Burn some CPU so the reading is well above the tick granularity.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  volatile std::uint64_t x = 0;
  while (std::chrono::steady_clock::now() < until) x = x + 1;
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

}  // namespace
