# Compile-time levers for a cold build (CI: a clean clone, 2 cores, maybe no
# ccache). Included by the top CMakeLists before the folders; each target opts
# in with df_speed_up() (below).
#
# - Unity builds: each library, each unit test binary (in optimized g++
#   builds: only those marked UNITY_O3, see below) and the `dataflow`
#   binary compile their sources in batches of DATAFLOW_UNITY_BATCH_SIZE, so
#   the headers every source includes (the standard library, json.hpp,
#   gtest, Beast, CLI11) are parsed and their templates instantiated once
#   per batch instead of once per source. File-local names (anonymous
#   namespace, static) of a batch's sources must differ: a clash is fixed by
#   renaming; a source owned elsewhere is left out of the batches
#   (SKIP_UNITY_BUILD_INCLUSION, or NO_UNITY for a whole test binary) with
#   the reason next to it.
# - Precompiled headers: one PCH of the third-party and standard headers for
#   the libraries (df_pch_lib), one with gtest added that every unit and
#   integration test reuses (df_pch_unit); not in optimized g++ builds (see
#   below). The `dataflow` binary has its own, with CLI11.
#
# Both keep ccache useful: the top CMakeLists runs ccache with the
# CCACHE_SLOPPINESS a PCH needs, and g++ compiles with -fpch-preprocess.
# -DDATAFLOW_UNITY_BUILD=OFF -DDATAFLOW_PCH=OFF compile source by source
# (e.g. to check that each source includes what it uses).
option(DATAFLOW_UNITY_BUILD "Compile sources in batches (unity build)" ON)
option(DATAFLOW_PCH "Precompile the third-party and standard headers" ON)
set(DATAFLOW_UNITY_BATCH_SIZE 6 CACHE STRING "Sources per unity batch")

# The headers most sources include that no engineer edits; project headers
# stay out (editing one would rebuild every PCH user).
set(DF_PCH_STD_HEADERS
    <algorithm> <atomic> <chrono> <condition_variable> <cstdint> <cstring> <filesystem>
    <fstream> <functional> <map> <memory> <mutex> <optional> <set> <sstream> <string>
    <string_view> <thread> <unordered_map> <utility> <variant> <vector>)

if(DATAFLOW_UNITY_BUILD AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # g++ takes a source included into a batch for a header, and warns when a
  # class of it holds a type from its anonymous namespace (json.cc).
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-Wno-subobject-linkage>)
endif()

# g++ 12 at -O2/-O3 reports libstdc++ false positives (-Warray-bounds on
# std::string's memcpy) once a batch inlines across sources, and in any
# source compiled with the shared PCH (the standard headers then no longer
# count as system headers): an optimized g++ build batches only the targets
# marked UNITY_O3 and uses no shared PCH. The sanitizer builds (clang -O0,
# g++ -O1) use both everywhere.
set(DF_UNITY_ONLY_O3_TARGETS OFF)
set(DF_SHARED_PCH ${DATAFLOW_PCH})
set(DF_OPTIMIZED_GXX OFF)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_BUILD_TYPE MATCHES "^(Release|RelWithDebInfo|MinSizeRel)$")
  set(DF_OPTIMIZED_GXX ON)
  set(DF_UNITY_ONLY_O3_TARGETS ON)
  set(DF_SHARED_PCH OFF)
endif()

if(DATAFLOW_PCH)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_LAUNCHER)
    # ccache hashes the preprocessed source: with this, g++ names the .gch in it.
    add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fpch-preprocess>)
  endif()
  set(df_pch_dir ${CMAKE_BINARY_DIR}/pch)
  file(WRITE ${df_pch_dir}/pch.cc.in "// Compiles a precompiled header (cmake/BuildSpeed.cmake).\n")
  configure_file(${df_pch_dir}/pch.cc.in ${df_pch_dir}/pch.cc COPYONLY)

  # A PCH is compiled by one target and reused by the others with the same
  # flags (target_precompile_headers REUSE_FROM).
  if(DF_SHARED_PCH)
    add_library(df_pch_lib STATIC ${df_pch_dir}/pch.cc)
    target_link_libraries(df_pch_lib PRIVATE nlohmann_json::nlohmann_json)
    target_precompile_headers(df_pch_lib PRIVATE ${DF_PCH_STD_HEADERS} <nlohmann/json.hpp>)
  endif()
endif()


# df_speed_up(TARGET [UNITY] [UNITY_O3] [PCH lib|unit]): unity batches and a
# shared precompiled header for one target. A source that cannot share a
# batch (file-local names that clash with another source's, in a file
# someone else owns) sets SKIP_UNITY_BUILD_INCLUSION, with why.
function(df_speed_up target)
  cmake_parse_arguments(S "UNITY;UNITY_O3" "PCH" "" ${ARGN})
  if(NOT TARGET ${target})
    return()
  endif()
  set(unity ${S_UNITY})
  if(DF_UNITY_ONLY_O3_TARGETS)
    set(unity ${S_UNITY_O3})
  endif()
  if(DATAFLOW_UNITY_BUILD AND unity)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON
                          UNITY_BUILD_BATCH_SIZE ${DATAFLOW_UNITY_BATCH_SIZE})
  endif()
  if(DF_SHARED_PCH AND S_PCH)
    target_precompile_headers(${target} REUSE_FROM df_pch_${S_PCH})
  endif()
endfunction()

# df_unoptimized(TARGET): in an optimized g++ build, a test program's own
# code compiles without optimization (the libraries it links stay
# optimized). Test code does little work of its own, and g++ compiles it
# twice as fast at -O0 (kafka_test.cc: 20 s -> 10 s); unoptimized, the
# unit tests' precompiled header is free of the -O3 false positives, so
# such a target reuses it (df_pch_unit, compiled at -O0 there). In CI's
# Release stage the integration tests were a sixth of the build.
function(df_unoptimized target)
  if(NOT DF_OPTIMIZED_GXX)
    return()
  endif()
  target_compile_options(${target} PRIVATE -O0)
  if(DATAFLOW_PCH AND TARGET df_pch_unit AND NOT target STREQUAL "df_pch_unit")
    target_precompile_headers(${target} REUSE_FROM df_pch_unit)
  endif()
endfunction()
