// LTTng-UST tracepoint provider of the peer benchmarks: entry and exit events around a
// span (per-span cost), and one event carrying a finished span's fields (lossless rate).
// Built into a shared object of its own that the benchmarks dlopen once a session
// daemon runs, so that liblttng-ust registers with it at that moment.
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER spyglass_peer
#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "lttng/spyglass_peer_tp.h"

#if !defined(SPYGLASS_PEER_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define SPYGLASS_PEER_TP_H

#include <lttng/tracepoint.h>
#include <stdint.h>

// A span opens: its name (LTTng timestamps every event itself).
LTTNG_UST_TRACEPOINT_EVENT(spyglass_peer, span_entry, LTTNG_UST_TP_ARGS(const char*, name),
                           LTTNG_UST_TP_FIELDS(lttng_ust_field_string(name, name)))

// The span closes.
LTTNG_UST_TRACEPOINT_EVENT(spyglass_peer, span_exit, LTTNG_UST_TP_ARGS(void), LTTNG_UST_TP_FIELDS())

// A finished span, with the fields a spyglass Event carries for a function scope.
// One field per line:
// clang-format off
LTTNG_UST_TRACEPOINT_EVENT(
    spyglass_peer, span,
    LTTNG_UST_TP_ARGS(uint64_t, trace_hi, uint64_t, trace_lo, uint64_t, span_id, uint64_t, parent_span_id,
                      uint64_t, start, uint64_t, duration, uint32_t, thread_id, uint8_t, status,
                      const char*, name),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer_hex(uint64_t, trace_hi, trace_hi)
        lttng_ust_field_integer_hex(uint64_t, trace_lo, trace_lo)
        lttng_ust_field_integer_hex(uint64_t, span_id, span_id)
        lttng_ust_field_integer_hex(uint64_t, parent_span_id, parent_span_id)
        lttng_ust_field_integer(uint64_t, start, start)
        lttng_ust_field_integer(uint64_t, duration, duration)
        lttng_ust_field_integer(uint32_t, thread_id, thread_id)
        lttng_ust_field_integer(uint8_t, status, status)
        lttng_ust_field_string(name, name)))
// clang-format on

#endif  // SPYGLASS_PEER_TP_H

#include <lttng/tracepoint-event.h>
