# Finds cpp-httplib (Debian: libcpp-httplib-dev), which ships a compiled library and a
# pkg-config file but no CMake config. Its ABI depends on the macros the pkg-config file
# names (OpenSSL, zlib, brotli support), so the flags come from pkg-config, not from a
# bare find_path. Defines the imported target CppHttplib::CppHttplib, global so that
# targets linking spyglass::httplib from any directory see it.
if(TARGET CppHttplib::CppHttplib)
  set(CppHttplib_FOUND TRUE)
  return()
endif()
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_CppHttplib QUIET IMPORTED_TARGET GLOBAL cpp-httplib)
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CppHttplib REQUIRED_VARS PC_CppHttplib_FOUND
                                  VERSION_VAR PC_CppHttplib_VERSION)
if(CppHttplib_FOUND)
  # A target of its own (not an alias), so exported targets name it as consumers define it.
  add_library(CppHttplib::CppHttplib INTERFACE IMPORTED GLOBAL)
  set_target_properties(CppHttplib::CppHttplib PROPERTIES INTERFACE_LINK_LIBRARIES PkgConfig::PC_CppHttplib)
endif()
