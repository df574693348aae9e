#include <sys/random.h>
#include <unistd.h>

#include "internal.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/context.hpp"

namespace SPYGLASS_NAMESPACE::detail {

// The fork handler (registry.cpp) clears random_seeded in the child, so parent and child
// never produce the same ids.
void seed_thread_random() noexcept {
  (void)registry();  // installs the fork handler that reseeds
  std::uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof seed)) {
    // No entropy source: mix what differs between threads and processes.
    seed = clock::monotonic_ns() ^ (static_cast<std::uint64_t>(getpid()) << 32) ^
           reinterpret_cast<std::uintptr_t>(&tl_state);
  }
  tl_state.random = seed;
  tl_state.random_seeded = true;
}

}  // namespace SPYGLASS_NAMESPACE::detail
