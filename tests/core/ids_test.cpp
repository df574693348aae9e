#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "spyglass/ids.hpp"

namespace sg = spyglass;

TEST(Ids, HexIsLowercaseAndFixedWidth) {
  EXPECT_EQ(sg::span_to_hex(0x00f067aa0ba902b7ULL), "00f067aa0ba902b7");
  EXPECT_EQ(sg::to_hex(sg::TraceId{0x4bf92f3577b34da6ULL, 0xa3ce929d0e0e4736ULL}),
            "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(sg::span_to_hex(1), "0000000000000001");
  EXPECT_EQ(sg::span_to_hex(~0ULL), "ffffffffffffffff");
}

TEST(Ids, NeverZeroAndUnique) {
  std::set<sg::SpanId> spans;
  std::set<std::pair<std::uint64_t, std::uint64_t>> traces;
  for (int i = 0; i < 100000; ++i) {
    const sg::SpanId s = sg::new_span_id();
    const sg::TraceId t = sg::new_trace_id();
    ASSERT_NE(s, 0u);
    ASSERT_TRUE(t.valid());
    spans.insert(s);
    traces.insert({t.hi, t.lo});
  }
  EXPECT_EQ(spans.size(), 100000u);
  EXPECT_EQ(traces.size(), 100000u);
}

TEST(Ids, ThreadsDoNotRepeatEachOther) {
  std::vector<sg::SpanId> a(10000), b(10000);
  std::thread ta([&] {
    for (auto& x : a) x = sg::new_span_id();
  });
  std::thread tb([&] {
    for (auto& x : b) x = sg::new_span_id();
  });
  ta.join();
  tb.join();
  std::set<sg::SpanId> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 20000u);
}

TEST(Ids, ForkedChildIsReseeded) {
  (void)sg::new_span_id();  // make sure this thread is seeded before fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    sg::SpanId ids[4];
    for (auto& id : ids) id = sg::new_span_id();
    const bool ok = write(fds[1], ids, sizeof ids) == static_cast<ssize_t>(sizeof ids);
    _exit(ok ? 0 : 1);
  }
  sg::SpanId parent[4];
  for (auto& id : parent) id = sg::new_span_id();
  sg::SpanId child[4] = {};
  ASSERT_EQ(read(fds[0], child, sizeof child), static_cast<ssize_t>(sizeof child));
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (auto c : child)
    for (auto p : parent) EXPECT_NE(c, p);
  close(fds[0]);
  close(fds[1]);
}
