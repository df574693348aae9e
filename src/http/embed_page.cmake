# Writes a C++ source defining page_html() with the bytes of INPUT (cmake -P, at build time):
#   cmake -DINPUT=web/inapp.html -DOUTPUT=page.cpp -P embed_page.cmake
file(READ ${INPUT} _hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," _bytes "${_hex}")
string(LENGTH "${_hex}" _len)
math(EXPR _len "${_len} / 2")
file(WRITE ${OUTPUT}.tmp
     "// Generated from ${INPUT} by embed_page.cmake; do not edit.\n"
     "#include \"page.hpp\"\n"
     "namespace SPYGLASS_NAMESPACE::http::detail {\n"
     "namespace {\nconstexpr char kPage[] = {${_bytes}};\n}  // namespace\n"
     "std::string_view page_html() noexcept { return {kPage, ${_len}}; }\n"
     "}  // namespace SPYGLASS_NAMESPACE::http::detail\n")
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
