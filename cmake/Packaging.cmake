# The Debian package (`cpack -G DEB` in the build directory, or the `package`
# target): /usr/bin/dataflow, /etc/dataflow/{config,policies}.yaml
# (conffiles), the systemd unit, maintainer scripts that create the
# `dataflow` user and /var/lib/dataflow (packaging/debian/). Dependencies come
# from the binary's shared libraries (dpkg-shlibdeps, package dpkg-dev).
# Checked by tests/deploy/deb_test.sh (lintian, contents, install, /health).
include(GNUInstallDirs)

set(df_pkg_dir ${CMAKE_SOURCE_DIR}/packaging)
set(df_pkg_doc /usr/share/doc/dataflow)

install(TARGETS dataflow RUNTIME DESTINATION bin COMPONENT dataflow)
install(FILES ${df_pkg_dir}/config.yaml ${df_pkg_dir}/policies.yaml
        DESTINATION /etc/dataflow PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        COMPONENT dataflow)  # postinst makes them root:dataflow 0640
install(FILES ${CMAKE_SOURCE_DIR}/systemd/dataflow.service DESTINATION /lib/systemd/system
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT dataflow)

# Debian wants the changelog and copyright in the doc directory, the
# changelog compressed with gzip -9n (reproducible: no name, no timestamp).
configure_file(${df_pkg_dir}/debian/changelog.in ${CMAKE_BINARY_DIR}/packaging/changelog.Debian
               @ONLY)
find_program(DF_GZIP gzip REQUIRED)
execute_process(
  COMMAND ${DF_GZIP} -9nf ${CMAKE_BINARY_DIR}/packaging/changelog.Debian
  RESULT_VARIABLE df_gzip_result)
if(NOT df_gzip_result EQUAL 0)
  message(FATAL_ERROR "gzip of the Debian changelog failed")
endif()
install(FILES ${CMAKE_BINARY_DIR}/packaging/changelog.Debian.gz ${df_pkg_dir}/debian/copyright
        DESTINATION ${df_pkg_doc}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT dataflow)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME dataflow)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# A Debian revision: the package is not native (its changelog is
# changelog.Debian.gz); bump it for packaging-only changes.
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_PACKAGE_VENDOR "DataFlow")
set(CPACK_PACKAGE_CONTACT "DataFlow maintainers <dataflow@example.com>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # dataflow_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/dataflow/dataflow")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "stateful stream-processing server")
# The synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY; this is the extended part.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "DataFlow runs stateful stream pipelines (Kafka, files, windows, joins)\n\
exactly once, with checkpoints to a directory or S3, in one small binary.\n\
This package installs the server, its configuration in /etc/dataflow and\n\
a systemd unit; pipelines are managed over its REST API.")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# adduser: postinst creates the system user. (deb-systemd-helper comes with
# init-system-helpers, an essential package: not listed.)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${df_pkg_dir}/debian/conffiles ${df_pkg_dir}/debian/postinst ${df_pkg_dir}/debian/prerm
    ${df_pkg_dir}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_ARCHIVE_TYPE gnutar)
include(CPack)
