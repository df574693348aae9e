#pragma once
// Counts what the process really takes from the C allocator: a malloc/free/calloc/realloc
// (and aligned variants) interposer that forwards to glibc's own entry points. operator
// new, the transit queue, the interning table and the stats all end up here.
//
// Include it in exactly ONE source file of a test binary: it defines the allocation
// functions for the whole process (glibc supports replacing them, see "Replacing malloc"
// in its manual). Sanitizers bring their own allocator; there the interposer is left out
// and kCountingMalloc is false.
#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPYGLASS_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SPYGLASS_TEST_SANITIZED 1
#endif
#endif

namespace spyglass::test {

#ifdef SPYGLASS_TEST_SANITIZED
inline constexpr bool kCountingMalloc = false;
#else
inline constexpr bool kCountingMalloc = true;
#endif

/// Bytes held in blocks from the allocator right now (their usable sizes), all threads.
inline constinit std::atomic<std::int64_t> g_live_bytes{0};
/// Allocation calls (malloc, calloc, realloc, aligned) made by the calling thread.
inline constinit thread_local std::uint64_t tl_alloc_calls = 0;
/// Allocation calls made by all threads.
inline constinit std::atomic<std::uint64_t> g_alloc_calls{0};

}  // namespace spyglass::test

#ifndef SPYGLASS_TEST_SANITIZED
extern "C" {
// glibc's own allocator, under the names it exports for interposers like this one.
void* __libc_malloc(std::size_t) noexcept;
void __libc_free(void*) noexcept;
void* __libc_calloc(std::size_t, std::size_t) noexcept;
void* __libc_realloc(void*, std::size_t) noexcept;
void* __libc_memalign(std::size_t, std::size_t) noexcept;
}

namespace spyglass::test::detail {
inline void* took(void* p) noexcept {
  ++tl_alloc_calls;
  g_alloc_calls.fetch_add(1, std::memory_order_relaxed);
  if (p != nullptr)
    g_live_bytes.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  return p;
}
inline void gave_back(void* p) noexcept {
  if (p != nullptr)
    g_live_bytes.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
}
}  // namespace spyglass::test::detail

extern "C" {
void* malloc(std::size_t n) noexcept { return spyglass::test::detail::took(__libc_malloc(n)); }
void free(void* p) noexcept {
  spyglass::test::detail::gave_back(p);
  __libc_free(p);
}
void* calloc(std::size_t n, std::size_t size) noexcept {
  return spyglass::test::detail::took(__libc_calloc(n, size));
}
void* realloc(void* p, std::size_t n) noexcept {
  // Account the old block as returned and the new one as taken (it may move).
  spyglass::test::detail::gave_back(p);
  void* q = __libc_realloc(p, n);
  if (q == nullptr && n != 0 && p != nullptr) {  // failed: the old block is still held
    spyglass::test::g_live_bytes.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)));
    return nullptr;
  }
  return spyglass::test::detail::took(q);
}
void* memalign(std::size_t align, std::size_t n) noexcept {
  return spyglass::test::detail::took(__libc_memalign(align, n));
}
void* aligned_alloc(std::size_t align, std::size_t n) noexcept { return memalign(align, n); }
int posix_memalign(void** out, std::size_t align, std::size_t n) noexcept {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  void* p = memalign(align, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(std::size_t n) noexcept { return memalign(4096, n); }
void* pvalloc(std::size_t n) noexcept { return memalign(4096, (n + 4095) & ~std::size_t{4095}); }
}
#endif
