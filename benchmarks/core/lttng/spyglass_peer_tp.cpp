// The probes of the spyglass_peer provider (see spyglass_peer_tp.h).
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#include "lttng/spyglass_peer_tp.h"
