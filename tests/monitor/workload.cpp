// Helper processes for the monitor tests, one per first argument:
//
//   calib MIB CPU_SECONDS THREADS WRITE_BYTES DIR
//       Forks a child that touches MIB/4 MiB, burns CPU_SECONDS/4 on one thread and
//       writes WRITE_BYTES/2 to DIR/child.bin; meanwhile touches MIB MiB, burns
//       3/4 * CPU_SECONDS across THREADS threads, writes WRITE_BYTES/2 to DIR/parent.bin,
//       then waits for the child. CPU is burnt against the thread CPU clock, so the
//       totals do not depend on how loaded the machine is.
//   runaway MODE PIDFILE
//       Forks a grandchild that ignores SIGTERM and sleeps; writes "PARENT GRANDCHILD" to
//       PIDFILE; then, by MODE: "cpu" spins, "rss" touches 8 MiB every 20 ms (up to
//       1 GiB), "sleep" sleeps. Never exits on its own.
//   steady MIB THREADS FDS
//       Touches MIB MiB, opens FDS descriptors, starts THREADS threads of which one
//       spins; prints "ready" and runs until stdin closes.
//   busyidle CPU_SECONDS IDLE_SECONDS
//       Burns CPU_SECONDS of CPU on one thread, then sleeps IDLE_SECONDS.
//   burst IDLE THREADS BUSY AFTER
//       Sleeps IDLE seconds, spins THREADS threads for BUSY seconds of wall time (a CPU
//       burst), then sleeps AFTER seconds.
//   leak MIB STEP_MS STEPS
//       Touches MIB more MiB every STEP_MS ms, STEPS times (a steady leak), then exits.
//   hold MIB SECONDS    touches MIB MiB, then sleeps SECONDS holding them (steady memory)
//   sampled             waits until an ancestor holds this process's /proc/PID/stat open
//                       (the monitor keeps the files of each process it sampled open, so
//                       a sample has seen it), then exits 0 at once (no exit handlers);
//                       exits 3 if that has not happened after 60 s
//   exit CODE           exits with CODE
//   alloc MIB           touches MIB MiB, then exits 0
//   signal SIG          kills itself with SIG
//   echo OUT ERR        writes OUT to stdout and ERR to stderr
//   overlap N MIB       forks N children that each touch MIB MiB and report how much their
//                       anonymous memory grew (RssAnon); once all have, releases them at
//                       once (each holds its memory until then, then exits) and prints
//                       each child's growth in KiB, a line each
//   cow MIB N DIR       touches MIB MiB, forks N children that share those pages without
//                       writing them, writes the N+1 pids to DIR/pids, and ends, with the
//                       children, once DIR/release exists

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

double thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

volatile std::uint64_t g_sink = 0;

void burn(double seconds) {
  const double end = thread_cpu() + seconds;
  std::uint64_t x = 1;
  while (thread_cpu() < end) {
    for (int i = 0; i < 10000; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  }
  g_sink = g_sink + x;
}

// Where touched memory escapes to, so that no optimiser may drop or delay the stores (clang
// removes a malloc whose memory nobody else can see).
char* volatile g_escape = nullptr;

char* touch(std::size_t mib) {
  const std::size_t n = mib * 1024 * 1024;
  auto* p = static_cast<char*>(std::malloc(n));
  for (std::size_t i = 0; i < n; i += 4096) p[i] = static_cast<char>(i);
  g_escape = p;
  return p;
}

void write_file(const std::string& path, std::size_t bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) std::exit(90);
  std::vector<char> buf(65536, 'x');
  while (bytes > 0) {
    const std::size_t n = std::min(bytes, buf.size());
    if (::write(fd, buf.data(), n) != static_cast<ssize_t>(n)) std::exit(91);
    bytes -= n;
  }
  ::close(fd);
}

int calib(char** argv) {
  const std::size_t mib = std::strtoul(argv[0], nullptr, 10);
  const double cpu = std::strtod(argv[1], nullptr);
  const int threads = std::atoi(argv[2]);
  const std::size_t bytes = std::strtoul(argv[3], nullptr, 10);
  const std::string dir = argv[4];
  const pid_t child = ::fork();
  if (child == 0) {
    char* p = touch(mib / 4);
    burn(cpu / 4);
    write_file(dir + "/child.bin", bytes / 2);
    g_sink = g_sink + static_cast<unsigned char>(p[0]);
    std::_Exit(0);
  }
  char* p = touch(mib);
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) ts.emplace_back([&] { burn(cpu * 3 / 4 / threads); });
  for (auto& t : ts) t.join();
  write_file(dir + "/parent.bin", bytes / 2);
  int st = 0;
  ::waitpid(child, &st, 0);
  g_sink = g_sink + static_cast<unsigned char>(p[0]);
  std::free(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

int runaway(char** argv) {
  const std::string mode = argv[0];
  const pid_t g = ::fork();
  if (g == 0) {
    ::signal(SIGTERM, SIG_IGN);
    for (;;) ::pause();
  }
  FILE* f = std::fopen(argv[1], "w");
  std::fprintf(f, "%d %d\n", static_cast<int>(::getpid()), static_cast<int>(g));
  std::fclose(f);
  if (mode == "cpu") {
    for (;;) burn(1.0);
  }
  if (mode == "rss") {
    for (int i = 0; i < 128; ++i) {
      touch(8);
      ::usleep(20000);
    }
  }
  for (;;) ::pause();
}

std::uint64_t rss_anon_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::strtoull(line.c_str() + 8, nullptr, 10);
  }
  return 0;
}

int overlap(char** argv) {
  const int n = std::atoi(argv[0]);
  const std::size_t mib = std::strtoul(argv[1], nullptr, 10);
  int report[2], release[2];
  if (::pipe(report) != 0 || ::pipe(release) != 0) return 90;
  std::vector<pid_t> kids;
  for (int i = 0; i < n; ++i) {
    const pid_t p = ::fork();
    if (p == 0) {
      ::close(release[1]);
      ::close(report[0]);
      const std::uint64_t before = rss_anon_kib();
      char* mem = touch(mib);
      const std::uint64_t grown = rss_anon_kib() - before;
      if (::write(report[1], &grown, sizeof grown) != static_cast<ssize_t>(sizeof grown)) std::_Exit(91);
      char c;
      while (::read(release[0], &c, 1) > 0) {
      }
      g_sink = g_sink + static_cast<unsigned char>(mem[0]);
      std::_Exit(0);
    }
    kids.push_back(p);
  }
  ::close(report[1]);
  ::close(release[0]);
  std::vector<std::uint64_t> grown(static_cast<std::size_t>(n));
  for (auto& g : grown) {
    if (::read(report[0], &g, sizeof g) != static_cast<ssize_t>(sizeof g)) return 92;
  }
  ::close(release[1]);  // every child holds its memory now; let them all go
  for (const pid_t p : kids) ::waitpid(p, nullptr, 0);
  for (const auto g : grown) std::printf("%llu\n", static_cast<unsigned long long>(g));
  return 0;
}

int cow(char** argv) {
  const std::size_t mib = std::strtoul(argv[0], nullptr, 10);
  const int n = std::atoi(argv[1]);
  const std::string dir = argv[2], release = dir + "/release";
  char* mem = touch(mib);
  std::string pids = std::to_string(::getpid()) + "\n";
  std::vector<pid_t> kids;
  for (int i = 0; i < n; ++i) {
    const pid_t p = ::fork();
    if (p == 0) {
      while (::access(release.c_str(), F_OK) != 0) ::usleep(2000);
      std::_Exit(0);
    }
    kids.push_back(p);
    pids += std::to_string(p) + "\n";
  }
  {
    std::ofstream out(dir + "/pids.tmp");
    out << pids;
  }
  std::filesystem::rename(dir + "/pids.tmp", dir + "/pids");
  for (const pid_t p : kids) ::waitpid(p, nullptr, 0);
  g_sink = g_sink + static_cast<unsigned char>(mem[0]);
  return 0;
}

int steady(char** argv) {
  const std::size_t mib = std::strtoul(argv[0], nullptr, 10);
  const int threads = std::atoi(argv[1]);
  const int fds = std::atoi(argv[2]);
  char* p = touch(mib);
  for (int i = 0; i < fds; ++i) ::open("/dev/null", O_RDONLY);
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  ts.emplace_back([&] {
    while (!stop) burn(0.01);
  });
  for (int i = 1; i < threads; ++i)
    ts.emplace_back([&] {
      while (!stop) ::usleep(10000);
    });
  std::printf("ready\n");
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  stop = true;
  for (auto& t : ts) t.join();
  g_sink = g_sink + static_cast<unsigned char>(p[0]);
  std::free(p);
  return 0;
}

pid_t parent_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(in, s);
  const auto rp = s.rfind(')');
  if (rp == std::string::npos || rp + 4 >= s.size()) return 0;
  return static_cast<pid_t>(std::atoi(s.c_str() + rp + 4));  // "...) S PPID ..."
}

// Whether `pid` has a descriptor open on `target`.
bool holds_open(pid_t pid, const std::string& target) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code rec;
    if (std::filesystem::read_symlink(e.path(), rec).string() == target) return true;
  }
  return false;
}

int sampled() {
  const std::string target = "/proc/" + std::to_string(::getpid()) + "/stat";
  for (int i = 0; i < 12000; ++i) {  // 5 ms apart: 60 s
    for (pid_t p = ::getppid(); p > 1; p = parent_of(p)) {
      if (holds_open(p, target)) return 0;
    }
    ::usleep(5000);
  }
  return 3;
}

int burst(char** argv) {
  ::usleep(static_cast<useconds_t>(std::strtod(argv[0], nullptr) * 1e6));
  const int threads = std::atoi(argv[1]);
  const auto end =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(std::strtod(argv[2], nullptr));
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([end] {
      while (std::chrono::steady_clock::now() < end) burn(0.001);
    });
  }
  for (auto& t : ts) t.join();
  ::usleep(static_cast<useconds_t>(std::strtod(argv[3], nullptr) * 1e6));
  return 0;
}

int leak(char** argv) {
  const auto mib = static_cast<std::size_t>(std::atoi(argv[0]));
  const auto step_us = static_cast<useconds_t>(std::atoi(argv[1]) * 1000);
  const int steps = std::atoi(argv[2]);
  std::vector<char*> kept;
  for (int i = 0; i < steps; ++i) {
    kept.push_back(touch(mib));
    ::usleep(step_us);
  }
  for (char* p : kept) g_sink = g_sink + static_cast<unsigned char>(p[0]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const std::string what = argv[1];
  if (what == "calib" && argc == 7) return calib(argv + 2);
  if (what == "runaway" && argc == 4) return runaway(argv + 2);
  if (what == "steady" && argc == 5) return steady(argv + 2);
  if (what == "overlap" && argc == 4) return overlap(argv + 2);
  if (what == "cow" && argc == 5) return cow(argv + 2);
  // These end with _Exit too: a LeakSanitizer tracer at the end would be a burst of CPU
  // and memory (it maps the whole process) of its own, and `leak` leaks on purpose.
  if (what == "burst" && argc == 6) std::_Exit(burst(argv + 2));
  if (what == "leak" && argc == 5) std::_Exit(leak(argv + 2));
  if (what == "hold" && argc == 4) {
    char* p = touch(static_cast<std::size_t>(std::atoi(argv[2])));
    ::usleep(static_cast<useconds_t>(std::strtod(argv[3], nullptr) * 1e6));
    g_sink = g_sink + static_cast<unsigned char>(p[0]);
    std::_Exit(0);
  }
  if (what == "busyidle" && argc == 4) {
    burn(std::strtod(argv[2], nullptr));
    ::usleep(static_cast<useconds_t>(std::strtod(argv[3], nullptr) * 1e6));
    return 0;
  }
  // _Exit: without the exit-time work of a sanitizer runtime, whose LeakSanitizer tracer
  // would be one more process in the sampled tree.
  if (what == "sampled" && argc == 2) std::_Exit(sampled());
  if (what == "exit" && argc == 3) return std::atoi(argv[2]);
  if (what == "alloc" && argc == 3) {
    char* p = touch(static_cast<std::size_t>(std::atoi(argv[2])));
    g_sink = g_sink + static_cast<unsigned char>(p[0]);
    std::free(p);
    return 0;
  }
  if (what == "signal" && argc == 3) {
    ::signal(std::atoi(argv[2]), SIG_DFL);
    ::kill(::getpid(), std::atoi(argv[2]));
    ::pause();
  }
  if (what == "echo" && argc == 4) {
    std::fputs(argv[2], stdout);
    std::fputs(argv[3], stderr);
    return 0;
  }
  return 2;
}
