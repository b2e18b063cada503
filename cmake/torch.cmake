# LibTorch for the engine: sets TORCH_LIBRARIES and TORCH_INCLUDE_DIRS.
#
# Debian's libtorch-dev (1.13, CPU-only) is found by its own TorchConfig.cmake. PyPI's torch
# wheel (scripts/setup.d/libtorch_pypi.sh, CMAKE_PREFIX_PATH=<it>/torch/share/cmake) is a CUDA
# build: its Caffe2Config.cmake stops the configure unless it finds a CUDA toolkit (nvcc, headers),
# and its `torch` target drags in libtorch_cuda.so (520 MB) — though CPU inference needs only
# libtorch_cpu.so and libc10.so. So for a CUDA build's tree we skip its config and link those two
# directly (the setup script does not even keep libtorch_cuda.so). libtorch_cpu.so still loads
# libcudart/libcupti at start-up; its own RPATH finds them in ../../nvidia/cu13/lib, where the
# wheels (and the setup script) put them, and CMake's RPATH finds libtorch_cpu.so itself.
set(IMAGEGEN_TORCH_ROOT "")
foreach(prefix IN LISTS CMAKE_PREFIX_PATH)
  foreach(config "${prefix}/Torch/TorchConfig.cmake" "${prefix}/share/cmake/Torch/TorchConfig.cmake")
    if(NOT IMAGEGEN_TORCH_ROOT AND EXISTS "${config}")
      get_filename_component(root "${config}/../../../.." ABSOLUTE)
      file(STRINGS "${root}/share/cmake/Caffe2/Caffe2Config.cmake" wants_cuda
           REGEX "set\\(CAFFE2_USE_CUDA 1\\)")
      if(wants_cuda)
        set(IMAGEGEN_TORCH_ROOT "${root}")
      endif()
    endif()
  endforeach()
endforeach()

# Which LibTorch a build dir uses, for tools that compare builds (bench/sd/unet_bench.py).
if(NOT IMAGEGEN_TORCH_ROOT)
  find_package(Torch REQUIRED)
  set(IMAGEGEN_TORCH_VERSION "${Torch_VERSION}" CACHE INTERNAL "LibTorch version")
  return()
endif()

file(STRINGS "${IMAGEGEN_TORCH_ROOT}/include/torch/headeronly/version.h" torch_version
     REGEX "define TORCH_VERSION_(MAJOR|MINOR|PATCH) ")
string(REGEX REPLACE "[^;]*_[A-Z]+ ([0-9]+)" "\\1" torch_version "${torch_version}")
string(REPLACE ";" "." torch_version "${torch_version}")
set(IMAGEGEN_TORCH_VERSION "${torch_version}" CACHE INTERNAL "LibTorch version")
message(STATUS "LibTorch ${torch_version}: the CPU libraries of the CUDA build in "
               "${IMAGEGEN_TORCH_ROOT}")
add_library(imagegen_torch_cpu INTERFACE)
target_link_libraries(imagegen_torch_cpu INTERFACE "${IMAGEGEN_TORCH_ROOT}/lib/libtorch_cpu.so"
                                                   "${IMAGEGEN_TORCH_ROOT}/lib/libc10.so")
# What the wheel's torch_cpu target declares: the headers' view of the library's build.
target_compile_definitions(imagegen_torch_cpu INTERFACE USE_DISTRIBUTED USE_C10D_GLOO USE_RPC
                                                        USE_TENSORPIPE)
set(TORCH_LIBRARIES imagegen_torch_cpu)
set(TORCH_INCLUDE_DIRS "${IMAGEGEN_TORCH_ROOT}/include"
                       "${IMAGEGEN_TORCH_ROOT}/include/torch/csrc/api/include")
