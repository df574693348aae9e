#pragma once
// Runs a command to its end for a benchmark: wall time, exit status and, if asked, stdout.

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

extern char** environ;

namespace spyglass_bench {

/// Where a spawned command's stdout goes.
enum class Stdout {
  discard,  ///< /dev/null
  capture,  ///< a pipe, read into Spawned::out
  drain,    ///< a pipe, read and thrown away (a consumer that keeps up, holding nothing)
};

/// What one run of a command gave.
struct Spawned {
  double ms = 0;                 ///< wall time from spawn to reaped exit
  bool ok = false;               ///< started and exited with status 0
  std::string out;               ///< stdout, when captured
  std::uint64_t out_bytes = 0;   ///< bytes read from stdout (captured or drained)
  double user_s = 0, sys_s = 0;  ///< CPU of the command and the children it waited for (wait4)
};

/// Runs `args` (args[0] a path) with stdin from /dev/null, stdout as `how` says and stderr
/// inherited, and waits for it.
inline Spawned spawn_and_wait(const std::vector<std::string>& args, Stdout how = Stdout::discard) {
  const bool capture = how != Stdout::discard;
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int fds[2] = {-1, -1};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (capture && ::pipe(fds) == 0) {
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
  } else {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  }
  Spawned r;
  const auto t0 = std::chrono::steady_clock::now();
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (fds[1] >= 0) ::close(fds[1]);
  if (rc == 0 && fds[0] >= 0) {
    static char buf[1 << 20];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) {
      r.out_bytes += static_cast<std::uint64_t>(n);
      if (how == Stdout::capture) r.out.append(buf, static_cast<std::size_t>(n));
    }
  }
  if (fds[0] >= 0) ::close(fds[0]);
  int st = 0;
  rusage ru{};
  if (rc == 0) ::wait4(pid, &st, 0, &ru);
  r.user_s = static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6;
  r.sys_s = static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
  r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  r.ok = rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  return r;
}

}  // namespace spyglass_bench
