#pragma once
// Reading of OTEL_SDK_DISABLED, shared by from_env() and the exporter. Private.

#include <optional>
#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::otlp::detail {

/// OTEL_SDK_DISABLED's value: true or false (case-insensitive, blanks trimmed; empty is
/// false), nullopt when it is anything else.
std::optional<bool> parse_sdk_disabled(std::string_view value);

/// Whether this process's environment has OTEL_SDK_DISABLED=true.
bool sdk_disabled_in_environment();

}  // namespace SPYGLASS_NAMESPACE::otlp::detail
