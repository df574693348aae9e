// Sampler: walks the process tree through /proc/PID/task/TID/children (or a /proc scan
// when the kernel lacks that file) and reads stat, status, io, fd and smaps_rollup of
// each process through descriptors kept open between samples.

#include "spyglass/monitor/sampler.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <unordered_map>
#include <vector>

#include "proc_io.hpp"
#include "spyglass/clock.hpp"

namespace SPYGLASS_NAMESPACE::monitor {

namespace {

using detail::Fd;
using detail::parse_pids;
using detail::parse_stat;
using detail::StatFields;
using detail::tv_ns;

// Lists the numeric entries of an open /proc directory (rewound first), so a kept-open
// descriptor can be re-read like a file.
template <typename F>
bool for_each_numeric_entry(int dirfd, F&& f) {
  if (::lseek(dirfd, 0, SEEK_SET) < 0) return false;
  alignas(8) char buf[4096];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dirfd, buf, sizeof buf);
    if (n < 0) return false;
    if (n == 0) return true;
    detail::for_each_dirent64(buf, static_cast<std::size_t>(n), [&](const char* name) {
      if (name[0] >= '0' && name[0] <= '9') f(name);
    });
  }
}

// Open descriptors of a process from its open /proc/PID/fd directory. Linux 6.2 and later
// report the count as the directory's size, one fstat instead of listing it.
std::uint32_t count_fds(int dirfd) {
  struct stat st {};
  if (::fstat(dirfd, &st) == 0 && st.st_size > 0) return static_cast<std::uint32_t>(st.st_size);
  if (::lseek(dirfd, 0, SEEK_SET) < 0) return 0;
  alignas(8) char buf[4096];
  std::uint32_t count = 0;
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dirfd, buf, sizeof buf);
    if (n <= 0) return count;
    detail::for_each_dirent64(buf, static_cast<std::size_t>(n), [&](const char* name) {
      if (!(name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)))) ++count;
    });
  }
}

// One thread of a multi-threaded process: its children list and its context switches
// live in its own task directory.
struct Task {
  pid_t tid = 0;
  Fd children, status;
};

constexpr std::uint64_t kThreadCtxEveryNs = 100000000;

struct Entry {
  pid_t pid = 0;
  Fd stat, status, io, fd_dir, children;
  Fd smaps;
  StatFields st;
  std::uint64_t gen = 0;
  // The process's task directory and its threads' files, kept open like the others so
  // that a busy multi-threaded process costs two preads per thread and sample.
  Fd task_dir;
  std::vector<Task> tasks;  // sorted by tid
  std::uint64_t tasks_gen = 0;
  bool tasks_changed = false;  // threads came or went in the last sync_tasks()
  std::uint64_t ctx_ns = 0;    // when the threads' context switches were last read
  // Last observed values of counters that nobody else accumulates after exit.
  std::uint64_t vol = 0, invol = 0, rchar = 0, wchar = 0;
};

}  // namespace

struct Sampler::Impl {
  pid_t root = 0;
  bool self_mode = false;  // descendants of the caller, not the caller
  SamplerOptions opt;
  bool have_children_file = true;
  std::uint64_t tick_ns = 10000000;
  std::uint64_t page = 4096;
  std::unordered_map<pid_t, Entry> entries;
  std::uint64_t gen = 0;
  std::vector<pid_t> tree;  // pids of the last sample
  std::vector<pid_t> queue;
  std::vector<pid_t> tids;  // scratch of sync_tasks()
  std::vector<Task> next_tasks;
  std::string buf;
  std::string path;
  Sample prev{};
  bool have_prev = false;
  // Counters of processes that vanished, which no surviving process accounts for.
  std::uint64_t gone_vol = 0, gone_invol = 0, gone_rchar = 0, gone_wchar = 0;
  rusage base_children{};
  std::uint64_t own_cpu = 0;
  std::uint64_t taken = 0;

  Impl(pid_t pid, bool self, SamplerOptions o) : root(pid), self_mode(self), opt(o) {
    const long hz = ::sysconf(_SC_CLK_TCK);
    if (hz > 0) tick_ns = 1000000000ULL / static_cast<std::uint64_t>(hz);
    const long pg = ::sysconf(_SC_PAGESIZE);
    if (pg > 0) page = static_cast<std::uint64_t>(pg);
    path = "/proc/" + std::to_string(::getpid()) + "/task/" + std::to_string(::getpid()) + "/children";
    have_children_file = ::access(path.c_str(), R_OK) == 0;
    if (self_mode) ::getrusage(RUSAGE_CHILDREN, &base_children);
  }

  // Opens the files of `pid`; false when the process does not exist (any more).
  bool open_entry(Entry& e, pid_t pid) {
    e.pid = pid;
    const std::string base = "/proc/" + std::to_string(pid);
    e.stat = detail::open_ro((base + "/stat").c_str());
    if (!e.stat.valid()) return false;
    if (!detail::pread_all(e.stat.get(), buf) || !parse_stat(buf, e.st)) return false;
    e.status = detail::open_ro((base + "/status").c_str());
    e.io = detail::open_ro((base + "/io").c_str());  // needs ptrace access; may fail
    e.fd_dir = detail::open_ro((base + "/fd").c_str(), O_DIRECTORY);
    if (have_children_file) {
      const std::string p = base + "/task/" + std::to_string(pid) + "/children";
      e.children = detail::open_ro(p.c_str());
    }
    if (opt.smaps) e.smaps = detail::open_ro((base + "/smaps_rollup").c_str());
    return true;
  }

  // The entry for `pid`, refreshed; nullptr when the process is gone. A pid reused by a
  // new process shows up as a failing read on the old descriptors followed by a
  // successful reopen with a different start time.
  Entry* refresh(pid_t pid) {
    auto it = entries.find(pid);
    if (it != entries.end()) {
      Entry& e = it->second;
      StatFields st;
      if (detail::pread_all(e.stat.get(), buf) && parse_stat(buf, st)) {
        e.st = st;
        return &e;
      }
      retire(e);
      entries.erase(it);
    }
    Entry fresh;
    if (!open_entry(fresh, pid)) return nullptr;
    auto [pos, ok] = entries.emplace(pid, std::move(fresh));
    (void)ok;
    return &pos->second;
  }

  // Keeps the counters of a vanished process that no survivor will account for.
  void retire(const Entry& e) {
    gone_vol += e.vol;
    gone_invol += e.invol;
    // A child the caller reaped folds its I/O into the caller's own counters, which
    // self-mode cannot use (they include the caller's work), so keep its last values.
    if (self_mode && e.st.ppid == root) {
      gone_rchar += e.rchar;
      gone_wchar += e.wchar;
    }
  }

  // Brings e.tasks in line with the process's threads now, once per sample: threads
  // that are gone are closed, new ones opened; the others keep their descriptors.
  void sync_tasks(Entry& e) {
    if (e.tasks_gen == gen) return;
    e.tasks_gen = gen;
    if (!e.task_dir.valid()) {
      e.task_dir = detail::open_ro(("/proc/" + std::to_string(e.pid) + "/task").c_str(), O_DIRECTORY);
      if (!e.task_dir.valid()) return;
    }
    tids.clear();
    for_each_numeric_entry(e.task_dir.get(), [&](const char* name) {
      tids.push_back(static_cast<pid_t>(detail::parse_u64(name)));
    });
    std::sort(tids.begin(), tids.end());
    next_tasks.clear();
    e.tasks_changed = tids.size() != e.tasks.size();
    auto old = e.tasks.begin();
    for (const pid_t tid : tids) {
      while (old != e.tasks.end() && old->tid < tid) ++old;
      if (old != e.tasks.end() && old->tid == tid) {
        next_tasks.push_back(std::move(*old));
        continue;
      }
      e.tasks_changed = true;
      Task t;
      t.tid = tid;
      open_task(e, t);
      next_tasks.push_back(std::move(t));
    }
    e.tasks.swap(next_tasks);
  }

  void open_task(const Entry& e, Task& t) {
    const std::string base = "/proc/" + std::to_string(e.pid) + "/task/" + std::to_string(t.tid);
    if (have_children_file) t.children = detail::open_ro((base + "/children").c_str());
    t.status = detail::open_ro((base + "/status").c_str());
  }

  // Reads one of a thread's files into buf. A thread that ended since it was opened (its
  // tid perhaps taken by a new thread of the process) is opened again, once.
  bool read_task(const Entry& e, Task& t, Fd Task::*file) {
    if ((t.*file).valid() && detail::pread_all((t.*file).get(), buf)) return true;
    open_task(e, t);
    return (t.*file).valid() && detail::pread_all((t.*file).get(), buf);
  }

  void children_of(Entry& e, std::vector<pid_t>& out) {
    if (!have_children_file) return;
    if (e.st.threads <= 1 && e.children.valid()) {
      if (detail::pread_all(e.children.get(), buf)) parse_pids(buf, out);
      return;
    }
    // Children belong to the thread that forked them: read every task's list.
    sync_tasks(e);
    for (Task& t : e.tasks) {
      if (read_task(e, t, &Task::children)) parse_pids(buf, out);
    }
  }

  // Parent -> children over all of /proc, for kernels without the children file.
  void scan_tree(std::vector<pid_t>& out) {
    std::unordered_multimap<pid_t, pid_t> kids;
    Fd proc = detail::open_ro("/proc", O_DIRECTORY);
    if (!proc.valid()) return;
    std::vector<pid_t> all;
    for_each_numeric_entry(
        proc.get(), [&](const char* name) { all.push_back(static_cast<pid_t>(detail::parse_u64(name))); });
    for (pid_t p : all) {
      Fd f = detail::open_ro(("/proc/" + std::to_string(p) + "/stat").c_str());
      StatFields st;
      if (f.valid() && detail::pread_all(f.get(), buf) && parse_stat(buf, st)) kids.emplace(st.ppid, p);
    }
    std::vector<pid_t> q{root};
    if (!self_mode) out.push_back(root);
    for (std::size_t i = 0; i < q.size(); ++i) {
      auto [b, en] = kids.equal_range(q[i]);
      for (auto k = b; k != en; ++k) {
        q.push_back(k->second);
        out.push_back(k->second);
      }
    }
  }

  void read_extras(Entry& e, Sample& s) {
    s.rss_bytes += e.st.rss_pages * page;
    s.vms_bytes += e.st.vsize;
    s.threads += static_cast<std::uint32_t>(e.st.threads);
    s.minflt += e.st.minflt + e.st.cminflt;
    s.majflt += e.st.majflt + e.st.cmajflt;
    s.cpu_user_ns += (e.st.utime + e.st.cutime) * tick_ns;
    s.cpu_sys_ns += (e.st.stime + e.st.cstime) * tick_ns;
    if (e.io.valid() && detail::pread_all(e.io.get(), buf)) {
      e.rchar = detail::field_u64(buf, "rchar:");
      e.wchar = detail::field_u64(buf, "wchar:");
      s.read_bytes += detail::field_u64(buf, "read_bytes:");
      s.write_bytes += detail::field_u64(buf, "write_bytes:");
    }
    s.rchar += e.rchar;
    s.wchar += e.wchar;
    if (e.fd_dir.valid()) s.fds += count_fds(e.fd_dir.get());
    read_ctx(e, s.t_ns);
    s.vol_ctx += e.vol;
    s.invol_ctx += e.invol;
    if (e.smaps.valid() && detail::pread_all(e.smaps.get(), buf)) {
      s.pss_bytes += detail::field_u64(buf, "Pss:") * 1024;
      s.uss_bytes += (detail::field_u64(buf, "Private_Clean:") + detail::field_u64(buf, "Private_Dirty:") +
                      detail::field_u64(buf, "Private_Hugetlb:")) *
                     1024;
    }
  }

  // /proc/PID/status reports the switches of the main thread only, so a multi-threaded
  // process is summed over its tasks. A thread's status is the costliest file the kernel
  // formats here, so a process whose threads stay the same has them read at most every
  // kThreadCtxEveryNs, however short the interval: 8 busy threads sampled every 10 ms
  // would otherwise cost 800 status files a second.
  void read_ctx(Entry& e, std::uint64_t now_ns) {
    if (e.st.threads <= 1) {
      if (e.status.valid() && detail::pread_all(e.status.get(), buf)) {
        e.vol = std::max(e.vol, detail::field_u64(buf, "voluntary_ctxt_switches:"));
        e.invol = std::max(e.invol, detail::field_u64(buf, "nonvoluntary_ctxt_switches:"));
      }
      return;
    }
    sync_tasks(e);
    if (!e.tasks_changed && e.ctx_ns != 0 && now_ns - e.ctx_ns < kThreadCtxEveryNs) return;
    e.ctx_ns = now_ns;
    std::uint64_t vol = 0, invol = 0;
    for (Task& t : e.tasks) {
      if (read_task(e, t, &Task::status)) {
        vol += detail::field_u64(buf, "voluntary_ctxt_switches:");
        invol += detail::field_u64(buf, "nonvoluntary_ctxt_switches:");
      }
    }
    // Threads that exited take their counts with them; never go backwards.
    e.vol = std::max(e.vol, vol);
    e.invol = std::max(e.invol, invol);
  }

  Sample sample() {
    const std::uint64_t cpu0 = clock::thread_cpu_ns();
    ++gen;
    Sample s;
    s.t_ns = clock::monotonic_ns();
    tree.clear();

    if (!have_children_file && opt.tree) {
      std::vector<pid_t> order;
      scan_tree(order);
      for (pid_t p : order) {
        Entry* e = refresh(p);
        if (e == nullptr) continue;
        e->gen = gen;
        tree.push_back(p);
        read_extras(*e, s);
      }
    } else {
      queue.clear();
      if (self_mode) {
        Entry* self = refresh(root);
        if (self != nullptr) {
          self->gen = gen;
          children_of(*self, queue);
        }
      } else {
        queue.push_back(root);
      }
      for (std::size_t i = 0; i < queue.size(); ++i) {
        const pid_t p = queue[i];
        Entry* e = refresh(p);
        if (e == nullptr || e->gen == gen) continue;  // gone, or listed twice
        e->gen = gen;
        tree.push_back(p);
        read_extras(*e, s);
        if (opt.tree) children_of(*e, queue);
      }
    }

    // Processes that left the tree since the last sample.
    for (auto it = entries.begin(); it != entries.end();) {
      if (it->second.gen != gen) {
        retire(it->second);
        it = entries.erase(it);
      } else {
        ++it;
      }
    }

    s.processes = static_cast<std::uint32_t>(tree.size());
    s.vol_ctx += gone_vol;
    s.invol_ctx += gone_invol;
    s.rchar += gone_rchar;
    s.wchar += gone_wchar;
    if (self_mode) {
      // Children the caller reaped: exact kernel totals, relative to construction.
      rusage ru{};
      ::getrusage(RUSAGE_CHILDREN, &ru);
      s.cpu_user_ns += tv_ns(ru.ru_utime) - tv_ns(base_children.ru_utime);
      s.cpu_sys_ns += tv_ns(ru.ru_stime) - tv_ns(base_children.ru_stime);
      s.minflt += static_cast<std::uint64_t>(ru.ru_minflt - base_children.ru_minflt);
      s.majflt += static_cast<std::uint64_t>(ru.ru_majflt - base_children.ru_majflt);
      s.read_bytes += static_cast<std::uint64_t>(ru.ru_inblock - base_children.ru_inblock) * 512;
      s.write_bytes += static_cast<std::uint64_t>(ru.ru_oublock - base_children.ru_oublock) * 512;
    }

    if (have_prev) {
      // A child's time moves into its parent's "children" fields when it is reaped; a
      // reap between reading the two can hide it for one sample. Cumulative values never
      // go backwards.
      s.cpu_user_ns = std::max(s.cpu_user_ns, prev.cpu_user_ns);
      s.cpu_sys_ns = std::max(s.cpu_sys_ns, prev.cpu_sys_ns);
      s.read_bytes = std::max(s.read_bytes, prev.read_bytes);
      s.write_bytes = std::max(s.write_bytes, prev.write_bytes);
      s.rchar = std::max(s.rchar, prev.rchar);
      s.wchar = std::max(s.wchar, prev.wchar);
      s.vol_ctx = std::max(s.vol_ctx, prev.vol_ctx);
      s.invol_ctx = std::max(s.invol_ctx, prev.invol_ctx);
      s.minflt = std::max(s.minflt, prev.minflt);
      s.majflt = std::max(s.majflt, prev.majflt);
      const double dt = static_cast<double>(s.t_ns - prev.t_ns);
      if (dt > 0) {
        s.cpu_user_pct = 100.0 * static_cast<double>(s.cpu_user_ns - prev.cpu_user_ns) / dt;
        s.cpu_sys_pct = 100.0 * static_cast<double>(s.cpu_sys_ns - prev.cpu_sys_ns) / dt;
      }
    }
    prev = s;
    have_prev = true;
    ++taken;
    own_cpu += clock::thread_cpu_ns() - cpu0;
    return s;
  }
};

Sampler::Sampler(pid_t pid, SamplerOptions options) : impl_(std::make_unique<Impl>(pid, false, options)) {}
Sampler::Sampler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sampler Sampler::children_of_self(SamplerOptions options) {
  options.tree = true;
  return Sampler(std::make_unique<Impl>(::getpid(), true, options));
}
Sampler::Sampler(Sampler&&) noexcept = default;
Sampler& Sampler::operator=(Sampler&&) noexcept = default;
Sampler::~Sampler() = default;

Sample Sampler::sample() { return impl_->sample(); }
std::span<const pid_t> Sampler::pids() const noexcept { return impl_->tree; }
std::uint64_t Sampler::own_cpu_ns() const noexcept { return impl_->own_cpu; }
std::uint64_t Sampler::samples_taken() const noexcept { return impl_->taken; }

}  // namespace SPYGLASS_NAMESPACE::monitor
