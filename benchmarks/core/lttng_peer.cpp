// The tracepoints are defined here, for the whole executable, with dynamic linkage: the
// provider's shared object (and with it liblttng-ust) is loaded by available(), after
// the session daemon is known to run, so that the process registers with it then.
#define LTTNG_UST_TRACEPOINT_DEFINE
#define LTTNG_UST_TRACEPOINT_PROBE_DYNAMIC_LINKAGE
#include "lttng_peer.hpp"

#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "lttng/spyglass_peer_tp.h"

namespace lttng_peer {
namespace {

struct Command {
  int status = -1;
  std::string output;
};

// Runs a shell command, capturing stdout and stderr.
Command run(const std::string& cmd) {
  Command r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  r.status = ::pclose(p);
  return r;
}

std::string g_reason;
pid_t g_started_daemon = 0;

void stop_started_daemon() {
  if (g_started_daemon > 0) ::kill(g_started_daemon, SIGTERM);
}

// True once `lttng list -u` shows this process with the provider's events.
bool registered() {
  const Command c = run("lttng list -u");
  const std::string me = "PID: " + std::to_string(::getpid()) + " ";
  const auto at = c.output.find(me);
  return c.status == 0 && at != std::string::npos &&
         c.output.find("spyglass_peer:span", at) != std::string::npos;
}

// Destroys sessions this benchmark left behind in a process that no longer exists (one
// that crashed): they would record this process's events as well.
void destroy_orphan_sessions() {
  const std::string listing = run("lttng list").output;
  const std::string prefix = "spyglass-peer-";
  for (auto at = listing.find(prefix); at != std::string::npos; at = listing.find(prefix, at + 1)) {
    const auto end = listing.find_first_of(" \n", at);
    const std::string name = listing.substr(at, end - at);
    const pid_t pid = static_cast<pid_t>(std::strtol(name.c_str() + prefix.size(), nullptr, 10));
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    run("lttng destroy " + name);
    std::error_code ec;
    std::filesystem::remove_all("/dev/shm/" + name, ec);
  }
}

bool set_up() {
  if (const char* off = std::getenv("SPYGLASS_BENCH_NO_LTTNG"); off != nullptr && std::string(off) == "1") {
    g_reason = "SPYGLASS_BENCH_NO_LTTNG=1";
    return false;
  }
  if (run("command -v lttng && command -v lttng-sessiond").status != 0) {
    g_reason = "lttng-tools is not installed (Debian: lttng-tools liblttng-ust-dev)";
    return false;
  }
  if (run("lttng list").status != 0) {
    if (::geteuid() != 0) {
      g_reason = "no LTTng session daemon runs, and starting one needs root";
      return false;
    }
    const Command d = run("lttng-sessiond --daemonize --no-kernel");
    if (d.status != 0 || run("lttng list").status != 0) {
      g_reason = "lttng-sessiond --daemonize failed: " + d.output;
      return false;
    }
    std::ifstream pid_file("/var/run/lttng/lttng-sessiond.pid");
    pid_t pid = 0;
    if (pid_file >> pid && pid > 0) {
      g_started_daemon = pid;
      std::atexit(stop_started_daemon);
    }
  }
  destroy_orphan_sessions();
  if (::dlopen(SPYGLASS_PEER_PROVIDER_PATH, RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    g_reason = std::string("cannot load the tracepoint provider: ") + ::dlerror();
    return false;
  }
  // liblttng-ust registers from a thread of its own; wait for the daemon to list us.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!registered()) {
    if (std::chrono::steady_clock::now() > give_up) {
      g_reason = "this process did not register with the LTTng session daemon";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

std::optional<std::uint64_t> parse_discarded(const std::string& listing) {
  const std::string key = "Discarded events:";
  const auto at = listing.find(key);
  if (at == std::string::npos) return std::nullopt;
  return std::strtoull(listing.c_str() + at + key.size(), nullptr, 10);
}

}  // namespace

bool available() {
  static const bool ok = [] {
    const bool r = set_up();
    if (!r) std::fprintf(stderr, "LTTng-UST peer skipped: %s\n", g_reason.c_str());
    return r;
  }();
  return ok;
}

const std::string& unavailable_reason() { return g_reason; }

Session::Session() {
  static int counter = 0;
  const std::string id = std::to_string(::getpid()) + "-" + std::to_string(++counter);
  name_ = "spyglass-peer-" + id;
  dir_ = "/dev/shm/spyglass-peer-" + id;
  if (!available()) return;
  const std::string s = " -s " + name_;
  ok_ = run("lttng create " + name_ + " --output=" + dir_).status == 0 &&
        run("lttng enable-channel -u peer" + s + " --subbuf-size 4M --num-subbuf 8 --discard").status == 0 &&
        run("lttng enable-event -u 'spyglass_peer:*' -c peer" + s).status == 0 &&
        run("lttng track -u --vpid=" + std::to_string(::getpid()) + s).status == 0 &&
        run("lttng start " + name_).status == 0;
  if (!ok_) std::fprintf(stderr, "LTTng-UST peer: cannot set up session %s\n", name_.c_str());
}

Session::~Session() {
  if (!available()) return;
  stop();
  run("lttng destroy " + name_);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::optional<std::uint64_t> Session::discarded() const {
  if (!ok_) return std::nullopt;
  return parse_discarded(run("lttng list " + name_).output);
}

std::optional<std::uint64_t> Session::stop() {
  if (!ok_) return std::nullopt;
  if (!stopped_) run("lttng stop " + name_);
  stopped_ = true;
  return discarded();
}

std::uint64_t consumerd_cpu_ns() {
  std::uint64_t ticks = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    if (!(comm >> name) || name != "lttng-consumerd") continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    // Fields after the command name (which ends at the last ')'): state is field 3,
    // utime and stime are fields 14 and 15.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    std::uint64_t utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
      if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    ticks += utime + stime;
  }
  return ticks * (1'000'000'000ULL / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK)));
}

}  // namespace lttng_peer
