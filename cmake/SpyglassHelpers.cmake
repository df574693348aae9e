# Warnings for the project's own targets only (never for consumers).
function(spyglass_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                           -Wsign-conversion -Wnon-virtual-dtor)
  if(SPYGLASS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  # Sanitizer instrumentation defeats GCC's flow analysis: -Wmaybe-uninitialized then
  # fires inside libstdc++ (std::function in <regex>). The plain build keeps the warning.
  if(SPYGLASS_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
endfunction()

# A component library: spyglass_<name>, alias spyglass::<name>, exported as spyglass::<name>.
# Usage: spyglass_add_component(<name> SOURCES ... )
function(spyglass_add_component name)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  add_library(spyglass_${name} ${ARG_SOURCES})
  add_library(spyglass::${name} ALIAS spyglass_${name})
  set_target_properties(spyglass_${name} PROPERTIES EXPORT_NAME ${name} OUTPUT_NAME spyglass_${name}
                                                    VERSION ${PROJECT_VERSION}
                                                    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
  target_compile_features(spyglass_${name} PUBLIC cxx_std_20)
  # A shared component must resolve every symbol when it is linked, not later in the
  # application. Sanitizer runtimes are linked into executables only, so not there.
  get_target_property(_type spyglass_${name} TYPE)
  if(_type STREQUAL "SHARED_LIBRARY" AND NOT SPYGLASS_SANITIZE)
    target_link_options(spyglass_${name} PRIVATE LINKER:--no-undefined)
  endif()
  spyglass_set_warnings(spyglass_${name})
  set_property(GLOBAL APPEND PROPERTY SPYGLASS_COMPONENTS ${name})
endfunction()

# A GoogleTest executable registered with CTest; LABELS lets CI pick subsets.
# Usage: spyglass_add_test(<name> SOURCES ... LIBS ... [LABELS ...])
function(spyglass_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  # A build runs only the tests with a label matching SPYGLASS_TEST_LABELS (a ThreadSanitizer
  # build: `threads`): the others are defined, so the CMake code around them still works,
  # but neither built nor registered.
  set(_skip OFF)
  if(SPYGLASS_TEST_LABELS)
    set(_skip ON)
    foreach(_label IN LISTS ARG_LABELS)
      if(_label MATCHES "${SPYGLASS_TEST_LABELS}")
        set(_skip OFF)
      endif()
    endforeach()
  endif()
  if(_skip)
    add_executable(${name} EXCLUDE_FROM_ALL ${ARG_SOURCES})
  else()
    add_executable(${name} ${ARG_SOURCES})
  endif()
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main Threads::Threads)
  spyglass_set_warnings(${name})
  # GoogleTest and the standard headers are parsed once (tests/CMakeLists.txt).
  if(TARGET spyglass_test_pch)
    target_precompile_headers(${name} REUSE_FROM spyglass_test_pch)
  endif()
  if(_skip)
    return()
  endif()
  include(GoogleTest)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT ${ARG_TIMEOUT}
                       WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  # Labels are set by a file ctest includes after the discovered tests: before CMake 3.28,
  # gtest_discover_tests flattens a list in PROPERTIES, so a second label would be lost.
  set(_labels_file ${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake)
  file(WRITE ${_labels_file} "foreach(test IN LISTS ${name}_TESTS)\n"
                             "  set_tests_properties(\"\${test}\" PROPERTIES LABELS \"${ARG_LABELS}\")\n"
                             "endforeach()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${_labels_file})
endfunction()

# An adapter component (adapters/<name>/): its include/ directory, the core, and the
# library it adapts, public when its header exposes that library's types.
# Usage: spyglass_add_adapter(<name> SOURCES ... [PUBLIC_LIBS ...] [PRIVATE_LIBS ...])
function(spyglass_add_adapter name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_LIBS;PRIVATE_LIBS" ${ARGN})
  spyglass_add_component(${name} SOURCES ${ARG_SOURCES})
  target_include_directories(spyglass_${name} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:include>)
  target_link_libraries(spyglass_${name} PUBLIC spyglass::core ${ARG_PUBLIC_LIBS} PRIVATE ${ARG_PRIVATE_LIBS})
endfunction()
