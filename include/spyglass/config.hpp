#pragma once
/// Build-time switches and the export macro shared by every public header.

#ifndef SPYGLASS_ENABLED
/// 1: the instrumentation macros record events; 0: they expand to nothing.
#define SPYGLASS_ENABLED 1
#endif

/// The library's namespace with its ABI version, spelled once: `namespace SPYGLASS_NAMESPACE {`.
/// The inline namespace lets two incompatible versions link into one program.
#define SPYGLASS_NAMESPACE spyglass::inline v0

#if defined(__GNUC__)
#define SPYGLASS_API __attribute__((visibility("default")))
#define SPYGLASS_LIKELY(x) __builtin_expect(!!(x), 1)
#define SPYGLASS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define SPYGLASS_API
#define SPYGLASS_LIKELY(x) (x)
#define SPYGLASS_UNLIKELY(x) (x)
#endif

#define SPYGLASS_CONCAT_INNER(a, b) a##b
#define SPYGLASS_CONCAT(a, b) SPYGLASS_CONCAT_INNER(a, b)
/// A name unique within a translation unit, for the RAII objects the macros declare.
#define SPYGLASS_UNIQUE(prefix) SPYGLASS_CONCAT(prefix, __COUNTER__)
