#pragma once
/// The whole public core API in one include: ids, context, events, the collector, the
/// session, the scope macros, traced() and the diagnostics hook.

#include "spyglass/clock.hpp"
#include "spyglass/collector.hpp"
#include "spyglass/context.hpp"
#include "spyglass/emitter.hpp"
#include "spyglass/event.hpp"
#include "spyglass/exporter.hpp"
#include "spyglass/ids.hpp"
#include "spyglass/intern.hpp"
#include "spyglass/log.hpp"
#include "spyglass/scope.hpp"
#include "spyglass/session.hpp"
#include "spyglass/stats.hpp"
#include "spyglass/traceparent.hpp"
