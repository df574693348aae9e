#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include <mutex>

#include "spyglass/clock.hpp"
#include "spyglass/emitter.hpp"
#include "spyglass/ids.hpp"

namespace spyglass::inline v0::detail {
namespace {
// In a forked child the forking thread keeps its thread-locals: forget its random state
// (so parent and child do not produce the same ids) and its thread id (which changed).
void reset_thread_identity_in_child() noexcept {
  tl_random.seeded = false;
  tl_state.tid = 0;
}
}  // namespace

void seed_thread_random() noexcept {
  static std::once_flag fork_handler_once;
  std::call_once(fork_handler_once, [] { pthread_atfork(nullptr, nullptr, reset_thread_identity_in_child); });
  std::uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof seed)) {
    // No entropy source: mix what differs between threads and processes.
    seed = clock::monotonic_ns() ^ (static_cast<std::uint64_t>(getpid()) << 32) ^
           reinterpret_cast<std::uintptr_t>(&tl_random);
  }
  tl_random.s = seed;
  tl_random.seeded = true;
}

}  // namespace spyglass::inline v0::detail
