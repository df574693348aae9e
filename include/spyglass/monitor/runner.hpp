#pragma once
/// Runs a command under the monitor: spawn, sample, enforce limits, collect exact totals.

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "spyglass/monitor/record.hpp"
#include "spyglass/monitor/sampler.hpp"

namespace SPYGLASS_NAMESPACE::monitor {

/// How a limit ends the tree.
enum class KillStrategy {
  graceful,   ///< SIGTERM to every process, SIGKILL to what is left after the grace period
  immediate,  ///< SIGKILL to every process at once
};

/// Whether the command runs in a cgroup of its own (see RunOptions::cgroup).
enum class CgroupMode {
  automatic,  ///< when one can be created, else the tree is sampled
  off,        ///< always sample the tree
};

/// Which figure RunOptions::max_rss_bytes limits.
enum class RssLimitSource {
  rss,     ///< the sampled RSS sum over the tree (counts shared pages once per process)
  pss,     ///< the sampled PSS sum over the tree (shared pages divided among sharers)
  cgroup,  ///< the cgroup's peak memory, read at each sample (rss without a cgroup)
  kernel,  ///< the cgroup's hard limit: the kernel reclaims, then OOM-kills (rss without a cgroup)
};

/// What to run and how to watch it.
struct RunOptions {
  std::vector<std::string> argv;  ///< command and arguments; argv[0] is looked up in PATH
  std::string label;              ///< copied into the record
  std::chrono::nanoseconds interval = std::chrono::milliseconds(100);  ///< >= 10 ms
  std::optional<std::chrono::nanoseconds> timeout;
  std::optional<std::uint64_t> max_rss_bytes;  ///< limit on the tree's memory (see max_rss_source)
  /// The figure max_rss_bytes limits. rss by default: it means the same with or without
  /// cgroups and never counts page cache, which the cgroup's figure does.
  RssLimitSource max_rss_source = RssLimitSource::rss;
  /// Run the command in a cgroup of its own (a child of ours, created before the command
  /// execs, so nothing escapes it, and removed at the end; processes still running then
  /// move back to ours), so that the tree's peak memory, CPU time, I/O and process count
  /// are the kernel's exact figures. Without one (not permitted, no memory controller,
  /// off) the tree is sampled and RunRecord::tree_source_reason says why.
  CgroupMode cgroup = CgroupMode::automatic;
  std::optional<double> max_cpu_seconds;  ///< limit on the tree's user+system CPU
  KillStrategy kill = KillStrategy::graceful;
  std::chrono::nanoseconds grace = std::chrono::seconds(5);
  std::size_t tail_bytes = 64 * 1024;  ///< how much of stdout/stderr to keep, each
  /// Copy the command's output to our stdout/stderr. The copy never blocks the monitor:
  /// at most 64 KiB per stream waits for our side, and while that is full the command's
  /// pipe is not read, so a reader that does not keep up (`| less`, paused) slows the
  /// command as it would without spyglass, while sampling, limits, the timeout and signal
  /// forwarding go on. The tail is kept either way. When the run ends, run() waits for
  /// our side to take what the command wrote before it ended, until a terminating signal
  /// (SIGINT, SIGTERM, SIGHUP, SIGQUIT) arrives after the run, or a second one during it;
  /// output our side cannot take (it was closed, or that signal came) is counted in
  /// RunResult::dropped_output_bytes.
  bool passthrough = true;
  /// After the command exits, how long to keep reading output while processes it left
  /// behind hold its stdout/stderr open. Limits and the timeout no longer apply then.
  std::chrono::nanoseconds drain = std::chrono::milliseconds(200);
  /// Report the command's own peak RSS. A forked command's exit status (ru_maxrss) also
  /// counts the copy of the monitor's memory it started with before exec; to read the
  /// peak of the exec'd program itself, the command (its first process only, not its
  /// descendants) is attached with PTRACE_SEIZE and stops once, at its exit, where its
  /// VmHWM is read. Set-user-ID/-group-ID and file-capability programs are never
  /// attached (exec would drop their privileges), nor programs with LeakSanitizer (it
  /// attaches to the program itself at exit); turn this off for a command that must
  /// not be traced (one that calls PTRACE_TRACEME or is to be attached by a debugger).
  /// When attaching fails or is off, max_rss_bytes is ru_maxrss.
  bool exact_peak = true;
  /// End descendants still running once the command has exited (SIGTERM, SIGKILL after
  /// the grace period, or SIGKILL at once with KillStrategy::immediate); either way they
  /// are counted in RunRecord::leftover_processes.
  bool kill_leftovers = false;
  /// When our stdout or stderr is a terminal (and passthrough is on), run the command on
  /// a pseudo-terminal with our window size (kept in step on SIGWINCH), so that it sees a
  /// terminal there. When stdin is our terminal too and we are its foreground group, it
  /// is put in raw mode and keys go through the pty (Ctrl-C, Ctrl-Z act on the command as
  /// in a shell). The command then leads a session of its own; output read from the pty
  /// is kept as the stdout tail (stderr's too when both are on it).
  bool terminal = true;
  bool smaps = false;                            ///< sample PSS/USS too (always with RssLimitSource::pss)
  std::size_t max_samples = 20000;               ///< beyond this, every other sample is dropped
  std::function<void(const Sample&)> on_sample;  ///< called on the runner's thread
};

/// The outcome of run().
struct RunResult {
  RunRecord record;
  std::vector<Sample> samples;  ///< sample times are CLOCK_MONOTONIC
  std::uint64_t start_mono_ns = 0;
  std::uint64_t dropped_output_bytes = 0;  ///< output not passed through (see passthrough)
  std::vector<pid_t> leftover_pids;        ///< descendants running after the command exited
  std::vector<std::string> warnings;       ///< what did not apply as asked (a limit's figure)
};

/// Returns the exit code for a wait status, as coreutils does: the code, or 128+signal.
SPYGLASS_API int exit_code_from_status(int status) noexcept;

/// Blocks every signal in the calling thread while it lives, then restores its mask. A
/// thread started meanwhile inherits the full mask from its first instruction, so there is
/// no moment when it could take a signal meant for run(). Wrap the start of every thread
/// that may still be running while run() is (see run()).
class SPYGLASS_API AllSignalsBlocked {
 public:
  AllSignalsBlocked() noexcept;
  ~AllSignalsBlocked();
  AllSignalsBlocked(const AllSignalsBlocked&) = delete;
  AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;

 private:
  sigset_t old_;
};

/// Spawns options.argv in its own process group and monitors it until it exits.
///
/// Blocks the calling thread. While it runs, the calling process is a child subreaper, reaps
/// every child it has (so call it from a process that owns no other children, such as the
/// `spyglass` command), and SIGCHLD, SIGINT, SIGTERM, SIGHUP and SIGQUIT are blocked in the
/// calling thread and read from a signalfd. The kernel gives a process-directed signal to
/// any thread that does not block it, so every other thread of the process must block
/// these signals for the whole run (start them under AllSignalsBlocked): a thread that
/// does not would take SIGCHLD (the command's exit is then seen only at the next sample)
/// or die of SIGTERM with the whole process, leaving the tree running and the run
/// unrecorded. One of SIGINT, SIGTERM, SIGHUP or SIGQUIT ends the whole tree: it is forwarded to every
/// process in it (also those that left the command's process group), SIGKILL follows after options.grace, and
/// run() returns only once no descendant is left (RunRecord::kill_reason names the signal,
/// with "+SIGKILL" when the grace period ran out). A SIGCHLD disposition of SIG_IGN
/// or SA_NOCLDWAIT is set to SIG_DFL for the duration (the command starts with SIG_DFL).
/// When a limit kills the run, no descendant outlives it. A command that cannot be started
/// yields exit code 127 (not found) or 126 (not executable) and the reason in record.error;
/// a command whose exit status another waitpid() in this process took yields 125.
///
/// Job control: when stdin is our controlling terminal, we are its foreground process
/// group and alone in it, the terminal goes to the command's group (Ctrl-C and Ctrl-Z
/// reach the command directly). In a pipeline (`spyglass run -- cmd | less`) the terminal
/// stays with the pipeline, so the other members keep it; the command then runs as a
/// background group. If the command is then stopped by
/// SIGTSTP (Ctrl-Z), SIGTTIN or SIGTTOU, run() takes the terminal back and stops the
/// calling process with SIGTSTP (SIGTTIN for SIGTTIN), as a shell job would; once
/// continued it returns the terminal to the command if it is in the foreground again,
/// and sends SIGCONT to the command's group. Without a terminal, or for SIGSTOP, a stopped
/// command stays stopped until something continues it; the timeout and limits still
/// apply (a kill continues the tree). The timeout counts wall time, stopped time included.
SPYGLASS_API RunResult run(const RunOptions& options);

}  // namespace SPYGLASS_NAMESPACE::monitor
