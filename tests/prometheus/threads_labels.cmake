# Included by ctest after the tests of spyglass_prometheus_threads_tests were discovered:
# gives each of them both its labels and its timeout. (gtest_discover_tests in CMake
# < 3.28 flattens a list-valued LABELS in PROPERTIES, so `LABELS prometheus threads`
# would reach ctest as LABELS=prometheus and the `threads` label would be lost.)
foreach(test IN LISTS spyglass_prometheus_threads_tests_TESTS)
  set_tests_properties("${test}" PROPERTIES LABELS "prometheus;threads" TIMEOUT 600)
endforeach()
