#pragma once
// A PostgreSQL server of the test's own: initdb in a fresh temporary directory, started by
// pg_ctl on a free loopback port (its socket in that directory too), stopped and removed
// at the end. PostgreSQL refuses to run as root: when the tests run as root, the server's
// programs run as the unprivileged `postgres` user (Debian's package creates it).
//
// Needs SPYGLASS_PG_BINDIR (the directory of initdb and pg_ctl) defined by the build.

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace spyglass::test {

class PostgresServer {
 public:
  /// Creates and starts the server; throws std::runtime_error with the server's log when
  /// it cannot.
  PostgresServer() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "spyglass-pg-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (pw == nullptr)
        throw std::runtime_error("running as root, and there is no 'postgres' user to run the server");
      if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) throw std::runtime_error("chown failed");
      as_user_ = {"/usr/sbin/runuser", "-u", "postgres", "--"};
    }
    port_ = free_loopback_port();
    const std::string data = (dir_ / "data").string();
    run({bin("initdb"), "-D", data, "-A", "trust", "-U", kUser, "-E", "UTF8", "--locale=C", "--no-sync"},
        "initdb");
    start();
  }

  ~PostgresServer() {
    try {
      stop();
    } catch (...) {
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  /// Starts the server (again) on the same port; returns once it accepts connections.
  void start() {
    if (started_) return;
    run({bin("pg_ctl"), "-D", (dir_ / "data").string(), "-l", (dir_ / "server.log").string(), "-w", "-t",
         "300", "-o",
         "-p " + std::to_string(port_) + " -k " + dir_.string() +
             " -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
         "start"},
        "pg_ctl start");
    started_ = true;
  }
  /// Stops the server at once (as a crash would); returns once it is down.
  void stop() {
    if (!started_) return;
    run({bin("pg_ctl"), "-D", (dir_ / "data").string(), "-m", "immediate", "-w", "stop"}, "pg_ctl stop");
    started_ = false;
  }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  /// libpq connection string for the server's `postgres` database over TCP.
  [[nodiscard]] std::string conninfo() const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + kUser + " dbname=postgres";
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// postgresql:// URL of database `db` on the server.
  [[nodiscard]] std::string url(const std::string& db = "postgres") const {
    return "postgresql://" + std::string(kUser) + "@127.0.0.1:" + std::to_string(port_) + "/" + db;
  }
  /// The server's log so far.
  [[nodiscard]] std::string log() const {
    std::ifstream in(dir_ / "server.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  static constexpr const char* kUser = "spyglass";

  static std::string bin(const char* name) { return std::string(SPYGLASS_PG_BINDIR) + "/" + name; }

  static std::uint16_t free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      throw std::runtime_error("bind failed");
    }
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
  }

  // Runs a server program (as the server's user) to its end, its output to a log in the
  // directory; throws with that log when it fails.
  void run(std::vector<std::string> args, const std::string& what) const {
    args.insert(args.begin(), as_user_.begin(), as_user_.end());
    const auto out = dir_ / "command.log";
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    int st = 0;
    if (rc == 0) ::waitpid(pid, &st, 0);
    if (rc != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::ifstream in(out);
      throw std::runtime_error(what + " failed: " + std::string(std::istreambuf_iterator<char>(in), {}) +
                               log());
    }
  }

  std::filesystem::path dir_;
  std::vector<std::string> as_user_;
  std::uint16_t port_ = 0;
  bool started_ = false;
};

}  // namespace spyglass::test
