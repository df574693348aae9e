#pragma once
// Shared helpers for the monitor tests: temporary directories and running programs.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace spyglass_test {

inline const std::string kSpyglass = SPYGLASS_EXE;
inline const std::string kWorkload = WORKLOAD_EXE;

/// A fresh directory under the working directory (the build tree: a real disk, so
/// write_bytes accounting applies), removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::current_path() / "monitor-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Result {
  int exit_code = -1;  ///< exit code, or 128+signal
  std::string out, err;
  double seconds = 0;
};

/// Spawns `argv` in directory `dir` with stdout/stderr captured to files there and stdin
/// from /dev/null.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv, const std::string& dir = ".") {
    static int counter = 0;
    const std::string base = dir + "/.child" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    out_path_ = base + ".out";
    err_path_ = base + ".err";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    start_ = std::chrono::steady_clock::now();
    if (::posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  [[nodiscard]] pid_t pid() const { return pid_; }
  Result wait() {
    Result r;
    int st = 0;
    if (pid_ > 0 && ::waitpid(pid_, &st, 0) == pid_) {
      r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    r.out = slurp(out_path_);
    r.err = slurp(err_path_);
    std::filesystem::remove(out_path_);
    std::filesystem::remove(err_path_);
    return r;
  }

 private:
  pid_t pid_ = -1;
  std::string out_path_, err_path_;
  std::chrono::steady_clock::time_point start_;
};

/// Runs `argv` with stdout read through a pipe (so that what it prints is not written to
/// disk, which would count in its block-output numbers) and stderr to /dev/null.
inline Result run_piped(const std::vector<std::string>& argv) {
  int p[2];
  Result r;
  if (::pipe2(p, O_CLOEXEC) != 0) return r;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  if (rc == 0) {
    char buf[65536];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) r.out.append(buf, static_cast<std::size_t>(n));
    int st = 0;
    ::waitpid(pid, &st, 0);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  ::close(p[0]);
  return r;
}

inline Result run(const std::vector<std::string>& argv, const std::string& dir = ".") {
  return Child(argv, dir).wait();
}

/// Leaves a hot journal next to the SQLite database `db` (rollback-journal mode): a
/// sqlite3 process changes pages in a transaction too large for its cache, so they reach
/// the file, and is killed before it commits. Returns false when that did not work.
inline bool make_hot_journal(const std::string& db) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return false;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  const char* argv[] = {"sqlite3", db.c_str(), nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  if (rc != 0) return false;
  const std::string sql =
      "PRAGMA cache_size=2; BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE "
      "i < 2000) INSERT INTO t SELECT randomblob(500) FROM c; UPDATE t SET x = 'changed' WHERE rowid = 1; "
      "SELECT 'x';\n";
  bool ok = ::write(in[1], sql.data(), sql.size()) == static_cast<ssize_t>(sql.size());
  char c = 0;
  ok = ok && ::read(out[0], &c, 1) == 1 && c == 'x';  // the transaction is under way
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ::close(in[1]);
  ::close(out[0]);
  return ok && std::filesystem::exists(db + "-journal");
}

/// Polls `cond` every 5 ms until it holds; returns false if it still does not after
/// `limit_s` seconds. The limit only keeps a broken build from hanging: tests pass
/// 60 s (kWaitLimit), far beyond any scheduling delay on a loaded machine.
template <class F>
bool wait_until(F cond, double limit_s) {
  const auto start = std::chrono::steady_clock::now();
  while (!cond()) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > limit_s)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}
inline constexpr double kWaitLimit = 60.0;

/// How late, in seconds, the monitor may act on a deadline it recorded (a limit seen by a
/// sample, the timeout, the end of the grace period). After a kill it polls every 10 ms
/// and the kernel frees a tree in a few ms; the rest is the monitor's own scheduling
/// delay: a few ms on an idle machine, hundreds of ms when both cores are busy with other
/// builds, more under a sanitizer. Tests measure from the monitor's own records, so no
/// start-up or clean-up of `spyglass run` counts.
inline constexpr double kMonitorSlack = 2.0;

/// The children of `pid` (of its first thread), from /proc.
inline std::vector<pid_t> children_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  for (pid_t p; in >> p;) out.push_back(p);
  return out;
}

/// True while `pid` exists (a zombie counts as gone).
inline bool alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(in, s);
  const auto rp = s.rfind(')');
  return rp != std::string::npos && rp + 2 < s.size() && s[rp + 2] != 'Z';
}

}  // namespace spyglass_test
