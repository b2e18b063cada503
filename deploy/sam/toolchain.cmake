# CMake toolchain for the Lambda bootstrap: clang targeting IMAGEGEN_LAMBDA_TRIPLE against the
# sysroot that sysroot.py builds (glibc 2.31, static C/C++ libraries). Used by deploy/sam/Makefile:
#   cmake -DCMAKE_TOOLCHAIN_FILE=deploy/sam/toolchain.cmake -DIMAGEGEN_LAMBDA_TRIPLE=aarch64-linux-gnu \
#         -DIMAGEGEN_LAMBDA_SYSROOT=/path/to/sysroot ...
# The same file serves a native and a cross build: clang is a cross compiler for every target it
# knows, and lld links any of them, so no per-architecture toolchain has to be installed.
set(CMAKE_SYSTEM_NAME Linux)
if(IMAGEGEN_LAMBDA_TRIPLE MATCHES "^aarch64")
  set(CMAKE_SYSTEM_PROCESSOR aarch64)
else()
  set(CMAKE_SYSTEM_PROCESSOR x86_64)
endif()
# Try-compiles run in fresh projects that see only these variables.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES IMAGEGEN_LAMBDA_TRIPLE IMAGEGEN_LAMBDA_SYSROOT)

set(CMAKE_SYSROOT ${IMAGEGEN_LAMBDA_SYSROOT})
set(CMAKE_C_COMPILER clang)
set(CMAKE_CXX_COMPILER clang++)
set(CMAKE_C_COMPILER_TARGET ${IMAGEGEN_LAMBDA_TRIPLE})
set(CMAKE_CXX_COMPILER_TARGET ${IMAGEGEN_LAMBDA_TRIPLE})
# libstdc++ and libgcc are linked in, and the result is stripped; SQLite needs libdl and libm,
# which its static users must name.
# Per-function sections, unused ones dropped and identical code folded: a smaller binary with
# fewer relocations to apply at every cold start (bench/lambda).
set(CMAKE_C_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_EXE_LINKER_FLAGS_INIT
    "-fuse-ld=lld -static-libstdc++ -static-libgcc -s -Wl,--gc-sections -Wl,--icf=safe")
set(CMAKE_CXX_STANDARD_LIBRARIES "-ldl -lm")

# Only the sysroot's libraries and headers, never the build host's.
set(CMAKE_FIND_ROOT_PATH ${IMAGEGEN_LAMBDA_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(OPENSSL_USE_STATIC_LIBS TRUE)
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${IMAGEGEN_LAMBDA_SYSROOT})
set(ENV{PKG_CONFIG_LIBDIR}
    "${IMAGEGEN_LAMBDA_SYSROOT}/usr/lib/${IMAGEGEN_LAMBDA_TRIPLE}/pkgconfig:${IMAGEGEN_LAMBDA_SYSROOT}/usr/share/pkgconfig")
