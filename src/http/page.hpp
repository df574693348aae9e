#pragma once
// The in-app page (web/inapp.html), embedded at build time by embed_page.cmake.
#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::http::detail {

/// The whole page: HTML with its CSS and script inline.
std::string_view page_html() noexcept;

}  // namespace SPYGLASS_NAMESPACE::http::detail
