// Cgroup: a child of the caller's own cgroup (v2, or the v1 memory, cpuacct and pids
// hierarchies) holding one command's tree, read and removed through plain file operations.

#include "cgroup.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "proc_io.hpp"

namespace SPYGLASS_NAMESPACE::monitor::detail {

namespace {

bool read_text(const std::string& path, std::string& out) {
  const Fd fd = open_ro(path.c_str());
  return fd.valid() && pread_all(fd.get(), out);
}

std::uint64_t read_u64(const std::string& path) {
  std::string s;
  return read_text(path, s) ? parse_u64(s) : 0;
}

// Writes `text` to a cgroup control file; 0 or the errno.
int write_text(const std::string& path, const std::string& text) {
  const Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  for (;;) {
    const ssize_t n = ::write(fd.get(), text.data(), text.size());
    if (n == static_cast<ssize_t>(text.size())) return 0;
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? errno : EIO;
  }
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string error_text(const std::string& what, int err) { return what + ": " + std::strerror(err); }

// The directory of the caller's cgroup in the hierarchy of `controller` ("" for v2).
bool own_dir(const std::string& proc_cgroup, const std::string& mountinfo, const std::string& controller,
             std::string& dir, std::string& why) {
  CgroupMount m;
  std::string path;
  const std::string name = controller.empty() ? "cgroup v2" : "the cgroup v1 " + controller + " controller";
  if (!find_cgroup_mount(mountinfo, controller, m)) {
    why = name + " is not mounted";
    return false;
  }
  if (!cgroup_path(proc_cgroup, controller, path)) {
    why = "no " + name + " line in /proc/self/cgroup";
    return false;
  }
  if (m.root != "/") {
    if (path.compare(0, m.root.size(), m.root) != 0) {
      why = "our cgroup " + path + " lies outside the mount of " + name + " (" + m.root + ")";
      return false;
    }
    path.erase(0, m.root.size());
  }
  dir = m.point + path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return true;
}

// Removes the empty cgroups that runs of processes no longer alive left behind (a
// monitor killed with SIGKILL cannot clean up); a non-empty one is left alone.
void remove_stale(const std::string& base) {
  DIR* d = ::opendir(base.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name.rfind("spyglass-", 0) != 0) continue;
    pid_t pid = 0;
    const char* first = e->d_name + 9;
    const auto [end, ec] = std::from_chars(first, e->d_name + name.size(), pid);
    if (ec != std::errc() || *end != '-' || pid <= 0) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) ::rmdir((base + "/" + std::string(name)).c_str());
  }
  ::closedir(d);
}

// Unique per process and run: several threads may run commands at once.
std::string next_name() {
  static std::atomic<unsigned> counter{0};
  return "spyglass-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

bool rmdir_retrying(const std::string& path) {
  // A process that has just exited may still count for a moment.
  for (int i = 0; i < 200; ++i) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    const timespec ts{0, 1000000};
    ::nanosleep(&ts, nullptr);
  }
  return false;
}

}  // namespace

Cgroup Cgroup::none(std::string reason) {
  Cgroup c;
  c.reason_ = std::move(reason);
  return c;
}

Cgroup::Cgroup(Cgroup&& o) noexcept { *this = std::move(o); }

Cgroup& Cgroup::operator=(Cgroup&& o) noexcept {
  if (this != &o) {
    remove();
    version_ = o.version_;
    dirs_ = std::move(o.dirs_);
    memory_ = std::move(o.memory_);
    cpu_ = std::move(o.cpu_);
    io_ = std::move(o.io_);
    pids_ = std::move(o.pids_);
    reason_ = std::move(o.reason_);
    o.dirs_.clear();
  }
  return *this;
}

const char* Cgroup::source() const noexcept {
  if (!active()) return "sampled";
  return version_ == 2 ? "cgroup-v2" : "cgroup-v1";
}

Cgroup Cgroup::create() {
  std::string self, mountinfo;
  if (!read_text("/proc/self/cgroup", self) || !read_text("/proc/self/mountinfo", mountinfo)) {
    return none("cannot read /proc/self/cgroup and /proc/self/mountinfo");
  }
  const std::string name = next_name();
  Cgroup c;
  std::string why2, base;
  // cgroup v2, when its hierarchy has the memory controller.
  if (own_dir(self, mountinfo, "", base, why2)) {
    std::string controllers, enabled;
    read_text(base + "/cgroup.controllers", controllers);
    read_text(base + "/cgroup.subtree_control", enabled);
    int err = 0;
    if (!has_word(controllers, "memory")) {
      why2 = "cgroup v2 offers no memory controller in " + base;
      CgroupMount v1;
      if (find_cgroup_mount(mountinfo, "memory", v1)) why2 += " (it is bound to cgroup v1)";
    } else if (!has_word(enabled, "memory") &&
               (err = write_text(base + "/cgroup.subtree_control", "+memory"))) {
      why2 = error_text("cannot enable the memory controller below " + base, err);
      if (err == EBUSY) why2 += " (not for the children of a cgroup holding processes, as ours does)";
    } else {
      for (const char* ctl : {"io", "pids"}) {
        if (has_word(controllers, ctl) && !has_word(enabled, ctl)) {
          write_text(base + "/cgroup.subtree_control", std::string("+") + ctl);
        }
      }
      remove_stale(base);
      const std::string dir = base + "/" + name;
      if (::mkdir(dir.c_str(), 0755) != 0) {
        why2 = error_text("cannot create a cgroup in " + base, errno);
      } else if (!exists(dir + "/memory.peak")) {
        ::rmdir(dir.c_str());
        utsname u{};
        ::uname(&u);
        why2 = std::string("cgroup v2 has no memory.peak before Linux 5.19 (this is ") + u.release + ")";
      } else {
        c.version_ = 2;
        c.dirs_.push_back({dir, base});
        c.memory_ = c.cpu_ = dir;
        if (exists(dir + "/io.stat")) c.io_ = dir;
        if (exists(dir + "/pids.peak")) c.pids_ = dir;
        return c;
      }
    }
  }
  // cgroup v1: the memory hierarchy, and the others that are mounted. Not blkio: its
  // counters (blkio.throttle.io_service_bytes) only count I/O on devices that some
  // cgroup has a throttle rule for, so they would say 0 for a tree that read and wrote.
  std::string why1;
  if (!own_dir(self, mountinfo, "memory", base, why1)) return none(why2 + "; " + why1);
  remove_stale(base);
  const std::string mem = base + "/" + name;
  if (::mkdir(mem.c_str(), 0755) != 0) {
    return none(why2 + "; " + error_text("cannot create a cgroup in " + base, errno));
  }
  c.version_ = 1;
  c.dirs_.push_back({mem, base});
  c.memory_ = mem;
  for (const char* ctl : {"cpuacct", "pids"}) {
    std::string b, ignored;
    if (!own_dir(self, mountinfo, ctl, b, ignored)) continue;
    const std::string dir = b + "/" + name;
    bool known = false;
    for (const Dir& d : c.dirs_) known = known || d.path == dir;  // co-mounted hierarchies
    if (!known) {
      remove_stale(b);
      if (::mkdir(dir.c_str(), 0755) != 0) continue;
      c.dirs_.push_back({dir, b});
    }
    const std::string_view which = ctl;
    if (which == "cpuacct" && exists(dir + "/cpuacct.usage")) c.cpu_ = dir;
    if (which == "pids" && exists(dir + "/pids.peak")) c.pids_ = dir;
  }
  return c;
}

bool Cgroup::limit_memory(std::uint64_t bytes, std::string& why) {
  if (!active()) {
    why = reason_;
    return false;
  }
  const std::string v = std::to_string(bytes);
  if (version_ == 2) {
    if (const int err = write_text(memory_ + "/memory.max", v)) {
      why = error_text("cannot set memory.max", err);
      return false;
    }
    if (exists(memory_ + "/memory.swap.max")) write_text(memory_ + "/memory.swap.max", "0");
    write_text(memory_ + "/memory.oom.group", "1");
    return true;
  }
  if (const int err = write_text(memory_ + "/memory.limit_in_bytes", v)) {
    why = error_text("cannot set memory.limit_in_bytes", err);
    return false;
  }
  // Memory plus swap at the same limit: the tree cannot go beyond it into swap.
  if (exists(memory_ + "/memory.memsw.limit_in_bytes"))
    write_text(memory_ + "/memory.memsw.limit_in_bytes", v);
  return true;
}

bool Cgroup::place(pid_t pid) {
  const std::string p = std::to_string(pid);
  for (const Dir& d : dirs_) {
    if (const int err = write_text(d.path + "/cgroup.procs", p)) {
      const std::string why = error_text("cannot move the command into " + d.path, err);
      remove();
      reason_ = why;
      return false;
    }
  }
  return true;
}

CgroupTotals Cgroup::read() const {
  CgroupTotals t;
  if (!active()) return t;
  std::string s;
  if (version_ == 2) {
    t.peak_memory_bytes = read_u64(memory_ + "/memory.peak");
    if (read_text(cpu_ + "/cpu.stat", s)) {
      t.user_cpu_ns = field_u64(s, "user_usec ") * 1000;
      t.sys_cpu_ns = field_u64(s, "system_usec ") * 1000;
      t.has_cpu = true;
    }
    if (!io_.empty() && read_text(io_ + "/io.stat", s)) {
      t.read_bytes = sum_io_stat(s, "rbytes=");
      t.write_bytes = sum_io_stat(s, "wbytes=");
      t.has_io = true;
    }
  } else {
    t.peak_memory_bytes = read_u64(memory_ + "/memory.max_usage_in_bytes");
    if (!cpu_.empty()) {
      // cpuacct.usage is exact; its user/system split is counted in ticks, so it only
      // divides the exact total.
      const std::uint64_t total = read_u64(cpu_ + "/cpuacct.usage");
      const std::uint64_t u = read_u64(cpu_ + "/cpuacct.usage_user"),
                          k = read_u64(cpu_ + "/cpuacct.usage_sys");
      t.user_cpu_ns = u + k == 0 ? total
                                 : static_cast<std::uint64_t>(static_cast<long double>(total) *
                                                              static_cast<long double>(u) /
                                                              static_cast<long double>(u + k));
      t.sys_cpu_ns = total - t.user_cpu_ns;
      t.has_cpu = true;
    }
  }
  if (!pids_.empty()) {
    t.peak_pids = static_cast<std::uint32_t>(read_u64(pids_ + "/pids.peak"));
    t.has_pids = true;
  }
  t.oom_kills = oom_kills();
  return t;
}

std::uint64_t Cgroup::peak_memory() const {
  if (!active()) return 0;
  return read_u64(memory_ + (version_ == 2 ? "/memory.peak" : "/memory.max_usage_in_bytes"));
}

std::uint64_t Cgroup::oom_kills() const {
  std::string s;
  if (!active() || !read_text(memory_ + (version_ == 2 ? "/memory.events" : "/memory.oom_control"), s))
    return 0;
  return field_u64(s, "oom_kill ");
}

void Cgroup::signal_all(int sig) const {
  if (!active()) return;
  std::string s;
  std::vector<pid_t> pids;
  if (read_text(memory_ + "/cgroup.procs", s)) parse_pids(s, pids);
  for (const pid_t p : pids) {
    if (p > 0) ::kill(p, sig);
  }
}

void Cgroup::remove() {
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    // Processes the command left running go on in the cgroup we came from.
    std::string s;
    for (int round = 0; round < 100; ++round) {
      std::vector<pid_t> pids;
      if (!read_text(it->path + "/cgroup.procs", s)) break;
      parse_pids(s, pids);
      if (pids.empty()) break;
      for (const pid_t p : pids) write_text(it->parent + "/cgroup.procs", std::to_string(p));
    }
    rmdir_retrying(it->path);
  }
  dirs_.clear();
  memory_.clear();
  cpu_.clear();
  io_.clear();
  pids_.clear();
}

}  // namespace SPYGLASS_NAMESPACE::monitor::detail
