# Fetches the official OpenTelemetry .proto files (npm package
# @opentelemetry/otlp-grpc-exporter-base@0.38.0 ships them under build/protos/) into
# DEST, unless they are there already. Usage: cmake -DDEST=<dir> -P fetch_protos.cmake
set(_pkg "@opentelemetry/otlp-grpc-exporter-base@0.38.0")
set(_marker "${DEST}/package/build/protos/opentelemetry/proto/collector/trace/v1/trace_service.proto")
if(EXISTS "${_marker}")
  return()
endif()
find_program(_npm npm)
if(NOT _npm)
  message(WARNING "npm not found: cannot fetch the OTLP .proto files the OTLP tests decode with")
  return()
endif()
file(MAKE_DIRECTORY "${DEST}")
execute_process(COMMAND "${_npm}" pack --silent "${_pkg}"
                WORKING_DIRECTORY "${DEST}" RESULT_VARIABLE _rc OUTPUT_VARIABLE _tgz
                OUTPUT_STRIP_TRAILING_WHITESPACE TIMEOUT 300)
if(NOT _rc EQUAL 0 OR NOT EXISTS "${DEST}/${_tgz}")
  message(WARNING "npm pack ${_pkg} failed (${_rc}): the OTLP decoder tests will fail")
  return()
endif()
file(ARCHIVE_EXTRACT INPUT "${DEST}/${_tgz}" DESTINATION "${DEST}")
if(NOT EXISTS "${_marker}")
  message(WARNING "${_pkg} did not contain build/protos/: the OTLP decoder tests will fail")
endif()
