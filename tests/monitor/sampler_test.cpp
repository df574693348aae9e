#include "spyglass/monitor/sampler.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <thread>
#include <vector>

#include "spyglass/clock.hpp"

namespace mon = spyglass::monitor;

namespace {

// Memory the tests touch escapes here, so that no optimiser drops or delays the stores.
char* volatile g_escape = nullptr;

void burn_cpu(double seconds) {
  auto now = [] { return static_cast<double>(spyglass::clock::thread_cpu_ns()) / 1e9; };
  const double end = now() + seconds;
  volatile std::uint64_t x = 1;
  while (now() < end) x = x * 3 + 1;
}

// A child that sleeps until killed.
pid_t sleeper() {
  const pid_t p = ::fork();
  if (p == 0) {
    for (;;) ::pause();
  }
  return p;
}

}  // namespace

TEST(Sampler, SamplesTheCallingProcess) {
  const std::uint64_t cpu_start = spyglass::clock::thread_cpu_ns();
  mon::Sampler s(::getpid(), {.smaps = true, .tree = false});
  std::vector<char> mem(32 << 20, 1);  // 32 MiB touched
  g_escape = mem.data();               // ... before the sample, not optimised away
  const mon::Sample a = s.sample();
  EXPECT_EQ(a.processes, 1u);
  EXPECT_GE(a.threads, 1u);
  EXPECT_GE(a.fds, 3u);
  EXPECT_GE(a.rss_bytes, 32u << 20);
  EXPECT_GE(a.vms_bytes, a.rss_bytes);
  EXPECT_GT(a.uss_bytes, 16u << 20);
  EXPECT_GE(a.pss_bytes, a.uss_bytes);  // PSS is USS plus a share of the shared pages
  // At least one fault per 2 MiB touched (not one per 4 KiB page: transparent huge pages
  // may fault 2 MiB at a time).
  EXPECT_GE(a.minflt, 16u);
  burn_cpu(0.3);
  const std::uint64_t cpu_before_b = spyglass::clock::thread_cpu_ns();
  const mon::Sample b = s.sample();
  const std::uint64_t cpu_in_b = spyglass::clock::thread_cpu_ns() - cpu_before_b;
  // Tick-granular kernel counters: 0.3 s of CPU shows as at least 0.25 s.
  EXPECT_GE(b.cpu_user_ns + b.cpu_sys_ns - a.cpu_user_ns - a.cpu_sys_ns, 250000000u);
  // The percentages are the CPU between the two samples over the time between them.
  ASSERT_GT(b.t_ns, a.t_ns);
  const double dt = static_cast<double>(b.t_ns - a.t_ns);
  EXPECT_DOUBLE_EQ(b.cpu_user_pct, 100.0 * static_cast<double>(b.cpu_user_ns - a.cpu_user_ns) / dt);
  EXPECT_DOUBLE_EQ(b.cpu_sys_pct, 100.0 * static_cast<double>(b.cpu_sys_ns - a.cpu_sys_ns) / dt);
  EXPECT_EQ(s.samples_taken(), 2u);
  // The sampler's own CPU: this thread's inside sample(), so more than nothing and no
  // more than the two calls took (the first one is bounded by the whole test so far).
  EXPECT_GT(s.own_cpu_ns(), 0u);
  EXPECT_LE(s.own_cpu_ns(), cpu_in_b + (cpu_before_b - cpu_start));
  ASSERT_EQ(s.pids().size(), 1u);
  EXPECT_EQ(s.pids()[0], ::getpid());
  EXPECT_EQ(mem[12345], 1);
}

TEST(Sampler, CountsThreadsOfTheProcess) {
  mon::Sampler s(::getpid(), {.tree = false});
  const std::uint32_t before = s.sample().threads;
  std::atomic<bool> stop{false};
  std::atomic<int> slept{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a voluntary switch
      ++slept;
      while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    });
  }
  while (slept < 3) std::this_thread::yield();
  const mon::Sample during = s.sample();
  stop = true;
  for (auto& t : ts) t.join();
  EXPECT_EQ(during.threads, before + 3);
  EXPECT_GE(during.vol_ctx, 3u);  // summed over the threads, not the main thread's only
}

TEST(Sampler, FollowsChildrenAndGrandchildren) {
  // child -> grandchild, plus a second child: four processes with the caller.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t c1 = ::fork();
  if (c1 == 0) {
    const pid_t g = sleeper();
    (void)g;
    const char x = 'x';
    (void)!::write(ready[1], &x, 1);
    for (;;) ::pause();
  }
  const pid_t c2 = sleeper();
  char x;
  ASSERT_EQ(::read(ready[0], &x, 1), 1);
  mon::Sampler s(::getpid());
  const mon::Sample a = s.sample();
  EXPECT_EQ(a.processes, 4u);
  const auto pids = s.pids();
  EXPECT_NE(std::find(pids.begin(), pids.end(), c1), pids.end());
  EXPECT_NE(std::find(pids.begin(), pids.end(), c2), pids.end());

  pid_t grandchild = 0;
  for (pid_t p : pids) {
    if (p != ::getpid() && p != c1 && p != c2) grandchild = p;
  }
  ASSERT_GT(grandchild, 0);
  // Killing c1 orphans the grandchild to init: the tree shrinks to the caller and c2.
  ::kill(c1, SIGKILL);
  ::waitpid(c1, nullptr, 0);
  const mon::Sample b = s.sample();
  EXPECT_EQ(b.processes, 2u);
  ::kill(c2, SIGKILL);
  ::waitpid(c2, nullptr, 0);
  ::kill(grandchild, SIGKILL);
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(Sampler, KeepsCpuOfChildrenThatExitBetweenSamples) {
  mon::Sampler s(::getpid());
  const mon::Sample a = s.sample();
  const pid_t c = ::fork();
  if (c == 0) {
    burn_cpu(0.4);
    std::_Exit(0);
  }
  ::waitpid(c, nullptr, 0);  // the child lived and died between two samples
  const mon::Sample b = s.sample();
  EXPECT_GE(b.cpu_user_ns + b.cpu_sys_ns - (a.cpu_user_ns + a.cpu_sys_ns), 350000000u);
  EXPECT_EQ(b.processes, 1u);
}

TEST(Sampler, ChildrenOfSelfExcludesTheCallerAndUsesRusageForReapedChildren) {
  mon::Sampler s = mon::Sampler::children_of_self();
  burn_cpu(0.2);  // the caller's own work must not count
  const mon::Sample a = s.sample();
  EXPECT_EQ(a.processes, 0u);
  EXPECT_LT(a.cpu_user_ns + a.cpu_sys_ns, 50000000u);
  const pid_t c = ::fork();
  if (c == 0) {
    burn_cpu(0.3);
    std::_Exit(0);
  }
  ::waitpid(c, nullptr, 0);
  const mon::Sample b = s.sample();
  EXPECT_EQ(b.processes, 0u);
  EXPECT_GE(b.cpu_user_ns + b.cpu_sys_ns, 290000000u);  // wait4 totals are microsecond-exact
}

TEST(Sampler, ExitedRootGivesEmptySampleAndKeepsCounters) {
  int burnt[2];
  ASSERT_EQ(::pipe(burnt), 0);
  const pid_t c = ::fork();
  if (c == 0) {
    burn_cpu(0.2);
    const char x = 'x';
    (void)!::write(burnt[1], &x, 1);
    for (;;) ::pause();
  }
  ::close(burnt[1]);
  mon::Sampler s(c);
  char x = 0;
  ASSERT_EQ(::read(burnt[0], &x, 1), 1);  // the child has burnt its CPU
  ::close(burnt[0]);
  const mon::Sample a = s.sample();
  EXPECT_EQ(a.processes, 1u);
  // Tick-granular: 0.2 s of CPU shows as at least 0.18 s.
  EXPECT_GE(a.cpu_user_ns + a.cpu_sys_ns, 180000000u);
  ::kill(c, SIGKILL);
  ::waitpid(c, nullptr, 0);
  const mon::Sample b = s.sample();
  EXPECT_EQ(b.processes, 0u);
  EXPECT_EQ(b.rss_bytes, 0u);
  EXPECT_GE(b.cpu_user_ns + b.cpu_sys_ns, a.cpu_user_ns + a.cpu_sys_ns);
}

TEST(Sampler, NonexistentPidIsEmpty) {
  // pid_max is at most 2^22, so this pid cannot exist.
  mon::Sampler s(static_cast<pid_t>(1 << 23));
  const mon::Sample a = s.sample();
  EXPECT_EQ(a.processes, 0u);
  EXPECT_EQ(a.cpu_user_ns, 0u);
  EXPECT_TRUE(s.pids().empty());
}
