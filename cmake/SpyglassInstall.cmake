# Install rules: headers, libraries, one export set per component, the package config.
# A component's export set is included only when that component is requested, so a
# consumer of spyglass::core never needs prometheus-cpp, libcurl or SQLite installed.
set(_cfgdir ${CMAKE_INSTALL_LIBDIR}/cmake/spyglass)
get_property(_components GLOBAL PROPERTY SPYGLASS_COMPONENTS)
# No INCLUDES DESTINATION: each component names its installed include directory itself
# ($<INSTALL_INTERFACE:...>), and a second spelling would list it twice in the exported
# INTERFACE_INCLUDE_DIRECTORIES.
foreach(_comp IN LISTS _components)
  install(TARGETS spyglass_${_comp} EXPORT spyglass_${_comp}Targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(EXPORT spyglass_${_comp}Targets NAMESPACE spyglass:: DESTINATION ${_cfgdir})
  foreach(_kind IN ITEMS exporters adapters)
    if(EXISTS ${PROJECT_SOURCE_DIR}/${_kind}/${_comp}/include/spyglass)
      install(DIRECTORY ${PROJECT_SOURCE_DIR}/${_kind}/${_comp}/include/spyglass
              DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
    endif()
  endforeach()
endforeach()
if(TARGET spyglass)
  install(TARGETS spyglass RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/spyglass DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/include/spyglass/version.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/spyglass)

set(SPYGLASS_BUILT_COMPONENTS ${_components})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/spyglassConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/spyglassConfig.cmake
                              INSTALL_DESTINATION ${_cfgdir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/spyglassConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
if("httplib" IN_LIST _components OR "http" IN_LIST _components)
  install(FILES ${PROJECT_SOURCE_DIR}/cmake/FindCppHttplib.cmake DESTINATION ${_cfgdir})
endif()
install(FILES ${PROJECT_BINARY_DIR}/spyglassConfig.cmake
              ${PROJECT_BINARY_DIR}/spyglassConfigVersion.cmake
        DESTINATION ${_cfgdir})
