// Monitor numbers: one sample of one process, of one with 8 threads and of a 10-process
// tree (p50/p99 as counters), what live detection adds per sample, psutil's cost for the
// same sample, the monitor's CPU overhead while running a command, `spyglass history`
// over 100,000 runs, and history writes from 16 processes at once to SQLite and to
// PostgreSQL on loopback.

#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../../tests/support/postgres_server.hpp"
#include "../support/spawn.hpp"
#include "spyglass/monitor/history.hpp"
#include "spyglass/monitor/live.hpp"
#include "spyglass/monitor/runner.hpp"
#include "spyglass/monitor/sampler.hpp"

namespace mon = spyglass::monitor;

namespace {

using Clock = std::chrono::steady_clock;

void percentiles(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
}

void sample_loop(benchmark::State& state, mon::Sampler& s) {
  std::vector<double> us;
  us.reserve(1 << 16);
  for (auto _ : state) {
    const auto t0 = Clock::now();
    benchmark::DoNotOptimize(s.sample());
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  percentiles(state, us);
}

void BM_SampleOneProcess(benchmark::State& state) {
  mon::Sampler s(::getpid(), {.smaps = state.range(0) != 0, .tree = false});
  sample_loop(state, s);
}
BENCHMARK(BM_SampleOneProcess)->Arg(0)->Arg(1)->ArgName("smaps");

void BM_SampleTree10(benchmark::State& state) {
  std::vector<pid_t> kids;
  for (int i = 0; i < 9; ++i) {
    const pid_t p = ::fork();
    if (p == 0) {
      for (;;) ::pause();
    }
    kids.push_back(p);
  }
  {
    mon::Sampler s(::getpid());
    if (s.sample().processes != 10) state.SkipWithError("tree is not 10 processes");
    sample_loop(state, s);
  }
  for (pid_t p : kids) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
}
BENCHMARK(BM_SampleTree10);

// One sample of a process with 8 more threads (blocked on a condition): its threads'
// children lists on every sample, their context switches at most every 100 ms.
void BM_SampleEightThreads(benchmark::State& state) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::vector<std::thread> pool;
  for (int i = 0; i < 8; ++i)
    pool.emplace_back([&] {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return done; });
    });
  {
    mon::Sampler s(::getpid(), {.smaps = false, .tree = true});
    if (s.sample().threads < 9) state.SkipWithError("the threads did not start");
    sample_loop(state, s);
  }
  {
    std::lock_guard<std::mutex> lock(m);
    done = true;
  }
  cv.notify_all();
  for (auto& t : pool) t.join();
}
BENCHMARK(BM_SampleEightThreads);

// What live detection (`spyglass run --detect on`) adds to each sample: LiveDetector::update
// on a noisy series at 100 ms intervals, the leak window full (600 points for the default
// 60 s, 6,000 for 600 s), so the least-squares fit covers the most points it ever does.
void BM_LiveDetectionPerSample(benchmark::State& state) {
  spyglass::analytics::LiveDetector::Options o;
  o.growth.window = static_cast<double>(state.range(0));
  spyglass::analytics::LiveDetector d(o);
  std::uint64_t x = 7;
  const auto noise = [&x] {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(x >> 11) / 9007199254740992.0;
  };
  double t = 0;
  const auto next = [&] {
    t += 0.1;
    return d.update(t, 40 + 20 * noise(), 200e6 + 4e6 * noise());
  };
  for (int i = 0; i < state.range(0) * 10 + 10; ++i) next();  // fill every window first
  std::vector<double> us;
  us.reserve(1 << 16);
  for (auto _ : state) {
    const auto t0 = Clock::now();
    benchmark::DoNotOptimize(next());
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  percentiles(state, us);
}
BENCHMARK(BM_LiveDetectionPerSample)->Arg(60)->Arg(600)->ArgName("leak_window_s");

// psutil reading the same fields (cpu_times, memory_info, num_threads, num_fds,
// io_counters, num_ctx_switches) of one process inside oneshot(), timed in Python; then
// the same plus children(recursive=True), psutil's way to find the tree.
void BM_PsutilSameSample(benchmark::State& state) {
  const std::string script =
      "import psutil, time\n"
      "p = psutil.Process(" +
      std::to_string(::getpid()) +
      ")\n"
      "def run(tree):\n"
      "    v = []\n"
      "    for _ in range(3000):\n"
      "        t = time.perf_counter()\n"
      "        with p.oneshot():\n"
      "            p.cpu_times(); p.memory_info(); p.num_threads(); p.num_fds(); p.io_counters(); "
      "p.num_ctx_switches()\n"
      "            if tree: p.children(recursive=True)\n"
      "        v.append((time.perf_counter() - t) * 1e6)\n"
      "    v.sort()\n"
      "    return '%f %f' % (v[len(v)//2], v[len(v)*99//100])\n"
      "print(run(False), run(True))\n";
  for (auto _ : state) {
    const auto r =
        spyglass_bench::spawn_and_wait({"/usr/bin/python3", "-c", script}, spyglass_bench::Stdout::capture);
    double p50 = 0, p99 = 0, tree_p50 = 0, tree_p99 = 0;
    if (!r.ok || std::sscanf(r.out.c_str(), "%lf %lf %lf %lf", &p50, &p99, &tree_p50, &tree_p99) != 4) {
      state.SkipWithError("python3 with psutil (python3-psutil) is needed");
      return;
    }
    state.counters["p50_us"] = p50;
    state.counters["p99_us"] = p99;
    state.counters["with_children_p50_us"] = tree_p50;
    state.counters["with_children_p99_us"] = tree_p99;
  }
}
BENCHMARK(BM_PsutilSameSample)->Iterations(1)->Unit(benchmark::kMillisecond);

// The runner's own CPU (sampling, polling, bookkeeping) while `sleep` runs, as a share
// of one core; the sampler-only share is reported too.
void BM_MonitorOverhead(benchmark::State& state) {
  for (auto _ : state) {
    mon::RunOptions o;
    o.argv = {"sleep", "5"};
    o.passthrough = false;
    o.interval = std::chrono::milliseconds(state.range(0));
    const mon::RunResult r = mon::run(o);
    const double wall = static_cast<double>(r.record.duration_ns);
    state.counters["runner_pct_of_core"] = 100.0 * static_cast<double>(r.record.monitor_cpu_ns) / wall;
    state.counters["samples"] = static_cast<double>(r.samples.size());
  }
}
BENCHMARK(BM_MonitorOverhead)
    ->Arg(100)
    ->Arg(10)
    ->ArgName("interval_ms")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// `spyglass history` (the whole command, process start included) over 100,000 runs.
void BM_HistoryCommand100k(benchmark::State& state) {
  static const std::string db = [] {
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("spyglass-bench-100k-" + std::to_string(::getpid()) + ".db"))
                                 .string();
    auto h = mon::History::open(path);
    mon::RunRecord r;
    r.command = "/usr/bin/make";
    r.args = {"-j2", "all"};
    r.cwd = "/work";
    r.host = "bench";
    std::vector<mon::Sample> samples(10);
    for (std::size_t k = 0; k < samples.size(); ++k) samples[k].t_ns = k * 100000000ULL;
    for (int i = 0; i < 100000; ++i) {
      r.label = "job-" + std::to_string(i % 50);
      r.start_unix_ns = 1700000000000000000LL + i * 1000000000LL;
      r.duration_ns = 1000000000LL + (i % 97) * 1000000LL;
      h.insert(r, samples, 0);
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove(db, ec);
    });
    return path;
  }();
  const std::string exe = SPYGLASS_EXE;
  const int label = static_cast<int>(state.range(0));
  std::vector<double> ms;
  for (auto _ : state) {
    std::vector<std::string> args = {exe, "history", "--db", db, "--limit", "20"};
    if (label != 0) args.insert(args.end(), {"--label", "job-7"});
    const auto r = spyglass_bench::spawn_and_wait(args);
    ms.push_back(r.ms);
    if (!r.ok) state.SkipWithError("spyglass history failed");
  }
  std::sort(ms.begin(), ms.end());
  state.counters["p50_ms"] = ms[ms.size() / 2];
  state.counters["max_ms"] = ms.back();
}
BENCHMARK(BM_HistoryCommand100k)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("by_label")
    ->Iterations(20)
    ->Unit(benchmark::kMillisecond);

// Runs recorded per second by 16 writer processes at once (as CI machines sharing one
// history), each run with 10 samples as `spyglass run` of a 1-second command stores, each
// writer on its own connection opened before the clock starts: one SQLite file (WAL, one
// writer at a time) and one PostgreSQL database on a loopback server started here.
void BM_HistoryWrites16Writers(benchmark::State& state) {
  constexpr int kWriters = 16, kRunsEach = 200;
  const bool postgres = state.range(0) != 0;
  std::optional<spyglass::test::PostgresServer> server;
  std::string where;
  if (postgres) {
    server.emplace();
    where = server->url();
  } else {
    where = (std::filesystem::temp_directory_path() /
             ("spyglass-bench-writes-" + std::to_string(::getpid()) + ".db"))
                .string();
  }
  { auto h = mon::History::open(where); }  // created and migrated before the clock
  for (auto _ : state) {
    int ready[2], go[2];
    if (::pipe(ready) != 0 || ::pipe(go) != 0) state.SkipWithError("pipe");
    std::vector<pid_t> kids;
    for (int w = 0; w < kWriters; ++w) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::close(ready[0]);
        ::close(go[1]);
        try {
          auto h = mon::History::open(where);
          mon::RunRecord r;
          r.command = "/usr/bin/make";
          r.args = {"-j2", "all"};
          r.cwd = "/work";
          r.host = "writer-" + std::to_string(w);
          r.label = "job-" + std::to_string(w % 4);
          r.stdout_tail = std::string(200, 'o');
          std::vector<mon::Sample> samples(10);
          for (std::size_t k = 0; k < samples.size(); ++k) samples[k].t_ns = k * 100000000ULL;
          char c = 'r';
          if (::write(ready[1], &c, 1) != 1 || ::read(go[0], &c, 1) != 0) std::_Exit(2);
          for (int i = 0; i < kRunsEach; ++i) {
            r.start_unix_ns = 1700000000000000000LL + i * 1000000000LL;
            r.duration_ns = 1000000000LL;
            h.insert(r, samples, 0);
          }
        } catch (const std::exception& e) {
          std::fprintf(stderr, "writer %d: %s\n", w, e.what());
          std::_Exit(1);
        }
        std::_Exit(0);
      }
      kids.push_back(pid);
    }
    ::close(ready[1]);
    ::close(go[0]);
    char c;
    for (int w = 0; w < kWriters; ++w) {
      if (::read(ready[0], &c, 1) != 1) state.SkipWithError("a writer did not start");
    }
    const auto t0 = Clock::now();
    ::close(go[1]);  // EOF: every writer starts
    bool ok = true;
    for (const pid_t k : kids) {
      int st = 0;
      ::waitpid(k, &st, 0);
      ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    ::close(ready[0]);
    if (!ok) state.SkipWithError("a writer failed");
    state.SetIterationTime(s);
    state.counters["runs_per_s"] = kWriters * kRunsEach / s;
  }
  auto h = mon::History::open(where, {.create = false, .read_only = true});
  state.counters["runs_stored"] = static_cast<double>(h.runs({.label = "", .limit = 1000000}).size());
  if (!postgres) {
    std::error_code ec;
    for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(where + ext, ec);
  }
}
BENCHMARK(BM_HistoryWrites16Writers)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("postgres")
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// The monitor's own CPU seen from outside, as GNU time sees it (wait4's rusage of the
// `spyglass` process, at microsecond precision rather than GNU time's 10 ms): spyglass
// and the command together, minus the command's own CPU, which spyglass records from its
// wait4. Over `sleep 5` and over 8 threads spinning for 5 s (this executable's `spin`).
void BM_MonitorOverheadFromOutside(benchmark::State& state) {
  const auto interval = std::to_string(state.range(0)) + "ms";
  const bool spin = state.range(1) != 0;
  const std::string json = (std::filesystem::temp_directory_path() /
                            ("spyglass-bench-overhead-" + std::to_string(::getpid()) + ".json"))
                               .string();
  std::vector<std::string> args = {SPYGLASS_EXE, "run", "--quiet", "--no-history", "--interval", interval,
                                   "--json",     json,  "--"};
  if (spin) {
    args.insert(args.end(), {std::filesystem::read_symlink("/proc/self/exe").string(), "spin", "8", "5"});
  } else {
    args.insert(args.end(), {"/bin/sleep", "5"});
  }
  for (auto _ : state) {
    const auto r = spyglass_bench::spawn_and_wait(args);
    std::ifstream in(json);
    const std::string rec((std::istreambuf_iterator<char>(in)), {});
    // The run record's "user_cpu_ns" and "sys_cpu_ns": the command's CPU.
    const auto field = [&](const char* key) {
      const auto at = rec.find(std::string("\"") + key + "\":");
      return at == std::string::npos ? -1.0
                                     : std::strtod(rec.c_str() + at + std::strlen(key) + 3, nullptr) / 1e9;
    };
    const double command = field("user_cpu_ns") + field("sys_cpu_ns");
    if (!r.ok || field("user_cpu_ns") < 0) {
      state.SkipWithError("spyglass run failed");
      break;
    }
    const double monitor = r.user_s + r.sys_s - command;
    state.counters["monitor_pct_of_core"] = 100.0 * monitor / (r.ms / 1000);
    state.counters["monitor_cpu_ms"] = monitor * 1000;
    state.counters["command_cpu_s"] = command;
  }
  std::filesystem::remove(json);
}
BENCHMARK(BM_MonitorOverheadFromOutside)
    ->Args({100, 0})
    ->Args({10, 0})
    ->Args({100, 1})
    ->Args({10, 1})
    ->ArgNames({"interval_ms", "spin8"})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// 1 GiB through the command's stdout, read by a consumer that keeps up: the command alone
// writing into that pipe, and under `spyglass run` (its pipe, its output tails, then the
// same pipe).
void BM_Passthrough1GiB(benchmark::State& state) {
  std::vector<std::string> args = {"/usr/bin/head", "-c", "1073741824", "/dev/zero"};
  if (state.range(0) != 0) args.insert(args.begin(), {SPYGLASS_EXE, "run", "--quiet", "--no-history", "--"});
  for (auto _ : state) {
    const auto r = spyglass_bench::spawn_and_wait(args, spyglass_bench::Stdout::drain);
    if (!r.ok || r.out_bytes != (1ULL << 30)) {
      state.SkipWithError("the command failed or its output was not whole");
      break;
    }
    state.SetIterationTime(r.ms / 1000);
    state.counters["cpu_s"] = r.user_s + r.sys_s;
  }
}
BENCHMARK(BM_Passthrough1GiB)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("spyglass")
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

}  // namespace

namespace {

// `spin THREADS SECONDS`: the CPU-bound command of BM_MonitorOverheadFromOutside.
int spin(int threads, double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> pool;
  std::atomic<std::uint64_t> sink{0};
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&] {
      std::uint64_t n = 0;
      while (Clock::now() < end)
        for (int k = 0; k < 10000; ++k) n += static_cast<std::uint64_t>(k) * 2654435761u;
      sink += n;
    });
  for (auto& t : pool) t.join();
  return sink.load() == 42 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string_view(argv[1]) == "spin") return spin(std::atoi(argv[2]), std::atof(argv[3]));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
