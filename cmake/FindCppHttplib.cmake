# Finds cpp-httplib (Debian: libcpp-httplib-dev), which ships a compiled library and a
# pkg-config file but no CMake config. Its ABI depends on the macros the pkg-config file
# names (OpenSSL, zlib, brotli support), so the flags come from pkg-config, not from a
# bare find_path. Defines the imported target CppHttplib::CppHttplib.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_CppHttplib QUIET IMPORTED_TARGET GLOBAL cpp-httplib)
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CppHttplib REQUIRED_VARS PC_CppHttplib_FOUND
                                  VERSION_VAR PC_CppHttplib_VERSION)
if(CppHttplib_FOUND AND NOT TARGET CppHttplib::CppHttplib)
  add_library(CppHttplib::CppHttplib ALIAS PkgConfig::PC_CppHttplib)
endif()
