# dice — one build for CPU and CUDA.
#
#   make            library + build/dice (CPU always; CUDA when nvcc is found; CUDA=0 opts out)
#   make deps       install missing Debian packages (make test / make demo run it first)
#   make test       the whole CPU suite, CUDA kernels included through the SIMT emulator
#   make test-gpu   the CUDA tests on a real GPU (says so and skips when there is none)
#   make bench      the benchmark programs in bench/
#   make demo       the embedded default (see README)
#   make SAN=1 test the suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   CUDA_ARCH="80 90" selects the real GPU code generated (sm_80 and sm_90 by default); V=1 prints commands;
#   B=DIR builds into DIR instead of build/
#
# Flavours of the same sources, each in its own directory:
#   $(B)/host   C sources for the program (with -DDICE_CUDA when the CUDA backend is built)
#   $(B)/cuda   .cu sources compiled by nvcc
#   $(B)/emu    everything compiled by the host compilers with -DDICE_CUDA -DDICE_EMU: the .cu
#               kernels run in the SIMT emulator (tests/simt); used by the test suite
#   $(B)/gpu    the test suite linked against the real CUDA library (make test-gpu)

SAN ?= 0
CUDA ?= 1
# V=1 prints every command
V ?= 0
ifeq ($(V),1)
  Q :=
  say = @true
else
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2)
endif
CUDA_ARCH ?= 80 90

ifeq ($(SAN),1)
  B := build-san
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  CUDA := 0
else
  # B=DIR builds into another folder (scripts/bundle_gpu.sh's sm_90-only build, for instance)
  B ?= build
  SANFLAGS :=
endif

CC := gcc
CXX := g++
OPT ?= -O2
WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter
CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -fopenmp -I. $(SANFLAGS) -MMD -MP
CXXFLAGS := -std=c++17 -D_GNU_SOURCE $(OPT) -g $(WARN) -fopenmp -I. $(SANFLAGS) -MMD -MP
LDFLAGS := -fopenmp $(SANFLAGS)

# ---------------------------------------------------------------- dependencies
have_pc = $(shell pkg-config --exists $(1) 2>/dev/null && echo yes)
NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME := $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)))
find_header = $(firstword $(wildcard $(addsuffix /$(1),$(CUDA_HOME)/include /usr/local/include /usr/include)))
find_lib = $(firstword $(wildcard $(addsuffix /lib$(1).so,$(CUDA_HOME)/lib64 /usr/local/lib /usr/lib/x86_64-linux-gnu /usr/lib)))
HAVE_CUBLASLT := $(call find_lib,cublasLt)
HAVE_CUDNN := $(if $(call find_header,cudnn.h),$(call find_lib,cudnn))
HAVE_NCCL := $(if $(call find_header,nccl.h),$(call find_lib,nccl))
HAVE_MPI := $(call have_pc,ompi-c)
HAVE_HDF5 := $(call have_pc,hdf5)
# OpenBLAS: the OpenMP build (Debian's libopenblas-openmp-dev) shares the OpenMP runtime with dice's own
# parallel loops; the pthread build spins its own threads against OpenMP's and runs 20-100x slower
# when both are busy on few cores. Use the OpenMP build when it is installed (make deps installs it).
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
OPENBLAS_OMP_DIR := $(wildcard /usr/lib/$(MULTIARCH)/openblas-openmp)
ifneq ($(wildcard $(OPENBLAS_OMP_DIR)/libopenblas.so),)
  HAVE_OPENBLAS := yes
  OPENBLAS_KIND := OpenMP build, $(OPENBLAS_OMP_DIR)
  OPENBLAS_CFLAGS := -I/usr/include/$(MULTIARCH)/openblas-openmp
  OPENBLAS_LIBS := -L$(OPENBLAS_OMP_DIR) -Wl,-rpath,$(OPENBLAS_OMP_DIR) -lopenblas
else
  HAVE_OPENBLAS := $(call have_pc,openblas)
  OPENBLAS_KIND := pthread build, slow next to OpenMP loops: run make deps
  OPENBLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
  OPENBLAS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null)
endif
HAVE_PNG := $(call have_pc,libpng)
HAVE_JPEG := $(call have_pc,libjpeg)
HAVE_CJSON := $(call have_pc,libcjson)

show = $(info $(shell printf '  %-9s %s' '$(1)' '$(if $(2),found $(3),missing)'))
ifeq ($(filter deps test demo test-gpu clean,$(MAKECMDGOALS)),)
  $(info dice build ($(B)): dependencies)
  $(call show,nvcc,$(NVCC),$(NVCC))
  $(call show,cuBLASLt,$(HAVE_CUBLASLT),$(HAVE_CUBLASLT))
  $(call show,cuDNN,$(HAVE_CUDNN),$(HAVE_CUDNN))
  $(call show,NCCL,$(HAVE_NCCL),$(HAVE_NCCL))
  $(call show,MPI,$(HAVE_MPI),(pkg-config ompi-c; mpirun $(if $(shell command -v mpirun),found,missing)))
  $(call show,HDF5,$(HAVE_HDF5),(pkg-config hdf5))
  $(call show,OpenBLAS,$(HAVE_OPENBLAS),($(OPENBLAS_KIND)))
  $(call show,libpng,$(HAVE_PNG),(pkg-config libpng))
  $(call show,libjpeg,$(HAVE_JPEG),(pkg-config libjpeg))
  $(call show,cJSON,$(HAVE_CJSON),(pkg-config libcjson))
endif

REQUIRED_MISSING := $(if $(HAVE_CJSON),,cJSON) $(if $(HAVE_PNG),,libpng) $(if $(HAVE_JPEG),,libjpeg) \
                    $(if $(HAVE_OPENBLAS),,OpenBLAS) $(if $(HAVE_HDF5),,HDF5)
REQUIRED_MISSING := $(strip $(REQUIRED_MISSING))

PC_LIBS := libcjson libpng libjpeg hdf5
DEP_CFLAGS := $(shell pkg-config --cflags $(PC_LIBS) 2>/dev/null) $(OPENBLAS_CFLAGS)
DEP_LIBS := $(shell pkg-config --libs $(PC_LIBS) 2>/dev/null) $(OPENBLAS_LIBS) -lm -lpthread
CFLAGS += $(DEP_CFLAGS)
CXXFLAGS += $(DEP_CFLAGS)

# DICE_MPI: OpenMPI was found, so `mpirun -np N dice train` runs N data-parallel ranks (train/dist.c);
# without it dice runs one rank and refuses more.
ifneq ($(HAVE_MPI),)
  MPI_CFLAGS := -DDICE_MPI $(shell pkg-config --cflags ompi-c 2>/dev/null)
  CFLAGS += $(MPI_CFLAGS)
  CXXFLAGS += $(MPI_CFLAGS)
  DEP_LIBS += $(shell pkg-config --libs ompi-c 2>/dev/null)
endif

BUILD_CUDA := $(if $(and $(NVCC),$(filter 1,$(CUDA))),yes)
ifeq ($(BUILD_CUDA),yes)
  ifeq ($(HAVE_CUBLASLT),)
    $(error nvcc found but cuBLASLt is missing; install the CUDA toolkit libraries or build with CUDA=0)
  endif
  # DICE_CUDNN: cuDNN was found, so the cuDNN convolution path (kernels/conv_cudnn.cu) is built.
  CUDNN_DEFS := $(if $(HAVE_CUDNN),-DDICE_CUDNN)
  # DICE_NCCL: NCCL was found, so data-parallel CUDA runs all-reduce gradients with NCCL (train/dist.c).
  HOST_DEFS := -DDICE_CUDA $(CUDNN_DEFS) $(if $(HAVE_NCCL),-DDICE_NCCL) -I$(CUDA_HOME)/include
  GENCODE := $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a))
  NVCCFLAGS := -std=c++17 -O3 -g -lineinfo $(GENCODE) -I. -DDICE_CUDA $(CUDNN_DEFS) -MMD -MP \
               -Xcompiler -Wall,-Wextra,-Wno-unused-parameter $(DEP_CFLAGS)
  CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublasLt \
               $(if $(HAVE_CUDNN),-lcudnn) $(if $(HAVE_NCCL),-lnccl) -lstdc++
else
  HOST_DEFS :=
  CUDA_LIBS :=
endif

# Objects depend on a stamp holding the flags, so changing CUDA=, CUDA_ARCH= or OPT= rebuilds them.
FLAGS_STAMP := $(B)/.flags
FLAGS_NOW := $(HOST_DEFS) $(CFLAGS) $(NVCCFLAGS)
ifneq ($(MAKECMDGOALS),clean)
  $(shell mkdir -p $(B); echo '$(FLAGS_NOW)' | cmp -s - $(FLAGS_STAMP) || echo '$(FLAGS_NOW)' > $(FLAGS_STAMP))
endif

# ---------------------------------------------------------------- sources
LIB_C := $(wildcard nn/*.c kernels/*.c models/*.c train/*.c sample/*.c data/*.c eval/*.c)
LIB_CU := $(wildcard kernels/*.cu)
TEST_C := $(filter-out tests/main.c,$(wildcard tests/*.c))
TEST_CU := $(wildcard tests/*.cu)
SIMT_CPP := $(wildcard tests/simt/*.cpp)
BENCH_C := $(wildcard bench/*.c)

# A .c and a .cu with the same stem would build the same object in the emulated flavour.
SAME_STEM := $(filter $(LIB_CU:%.cu=%),$(LIB_C:%.c=%))
ifneq ($(SAME_STEM),)
  $(error $(SAME_STEM): a .c and a .cu share this name; CPU twins are named *_cpu.c)
endif

HOST_OBJ := $(LIB_C:%.c=$(B)/host/%.o)
CUDA_OBJ := $(if $(BUILD_CUDA),$(LIB_CU:%.cu=$(B)/cuda/%.o))
EMU_LIB_OBJ := $(LIB_C:%.c=$(B)/emu/%.o) $(LIB_CU:%.cu=$(B)/emu/%.o) $(SIMT_CPP:%.cpp=$(B)/emu/%.o)
EMU_TEST_OBJ := $(TEST_C:%.c=$(B)/emu/%.o) $(TEST_CU:%.cu=$(B)/emu/%.o) $(B)/emu/tests/main.o \
                $(B)/emu/tests/registry.o
GPU_TEST_OBJ := $(TEST_C:%.c=$(B)/gpu/%.o) $(TEST_CU:%.cu=$(B)/gpu/%.o) $(B)/gpu/tests/main.o \
                $(B)/gpu/tests/registry.o

EMU_DEFS := -DDICE_CUDA -DDICE_EMU -Itests

.PHONY: all deps test test-run test-gpu test-gpu-run bench demo demo-run clean check-required
.DEFAULT_GOAL := all

all: check-required $(B)/dice

check-required:
ifneq ($(REQUIRED_MISSING),)
	@echo "missing required libraries: $(REQUIRED_MISSING); run 'make deps'" >&2; exit 1
endif

deps:
	@scripts/install_deps.sh

# ---------------------------------------------------------------- library and program
$(B)/libdice.a: $(HOST_OBJ) $(CUDA_OBJ)
	@mkdir -p $(@D)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

$(B)/dice: $(B)/host/dice.o $(B)/libdice.a
	$(call say,LINK,$@)
	$(Q)$(CXX) $(LDFLAGS) -o $@ $^ $(CUDA_LIBS) $(DEP_LIBS)

$(B)/host/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(HOST_DEFS) -c $< -o $@

$(B)/cuda/%.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(call say,NVCC,$<)
	$(Q)$(NVCC) $(NVCCFLAGS) -c $< -o $@

# ---------------------------------------------------------------- emulated flavour (tests)
$(B)/emu/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(call say,CC-EMU,$<)
	$(Q)$(CC) $(CFLAGS) $(EMU_DEFS) -c $< -o $@

# g++ does not know nvcc's `#pragma unroll` (a hint only; the emulated kernels need no unrolling).
$(B)/emu/%.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(call say,CU-EMU,$<)
	$(Q)$(CXX) $(CXXFLAGS) $(EMU_DEFS) -Wno-unknown-pragmas -x c++ -c $< -o $@

$(B)/emu/%.o: %.cpp $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(call say,CXX-EMU,$<)
	$(Q)$(CXX) $(CXXFLAGS) $(EMU_DEFS) -c $< -o $@

# The registry also depends on the list of test files (a file added with an old mtime, e.g. from a
# checkout or an archive, must still be registered).
TESTS_STAMP := $(B)/.test-files
ifneq ($(MAKECMDGOALS),clean)
  $(shell mkdir -p $(B); echo '$(TEST_C) $(TEST_CU)' | cmp -s - $(TESTS_STAMP) || echo '$(TEST_C) $(TEST_CU)' > $(TESTS_STAMP))
endif

$(B)/%/tests/registry.c: $(TEST_C) $(TEST_CU) scripts/gen_test_registry.sh $(TESTS_STAMP)
	@mkdir -p $(@D)
	$(call say,GEN,$@)
	$(Q)scripts/gen_test_registry.sh $(TEST_C) $(TEST_CU) > $@

$(B)/emu/tests/registry.o: $(B)/emu/tests/registry.c
	$(call say,CC-EMU,$<)
	$(Q)$(CC) $(CFLAGS) $(EMU_DEFS) -c $< -o $@

$(B)/emu/test_dice: $(EMU_TEST_OBJ) $(EMU_LIB_OBJ)
	$(call say,LINK,$@)
	$(Q)$(CXX) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

# ---------------------------------------------------------------- GPU flavour of the tests
$(B)/gpu/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(call say,CC-GPU,$<)
	$(Q)$(CC) $(CFLAGS) $(HOST_DEFS) -Itests -c $< -o $@

$(B)/gpu/%.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(call say,NVCC,$<)
	$(Q)$(NVCC) $(NVCCFLAGS) -Itests -c $< -o $@

$(B)/gpu/tests/registry.o: $(B)/gpu/tests/registry.c
	$(call say,CC-GPU,$<)
	$(Q)$(CC) $(CFLAGS) $(HOST_DEFS) -Itests -c $< -o $@

$(B)/gpu/test_dice: $(GPU_TEST_OBJ) $(B)/libdice.a
	$(call say,LINK,$@)
	$(Q)$(CXX) $(LDFLAGS) -o $@ $^ $(CUDA_LIBS) $(DEP_LIBS)

# ---------------------------------------------------------------- test entry points
# test and demo install the Debian packages first, then re-read this Makefile so the
# dependency detection sees what was installed.
test:
	@scripts/install_deps.sh
	@$(MAKE) --no-print-directory test-run

# With nvcc present the GPU flavour of the suite is compiled too (not run), so CI compiles every
# line of CUDA code for sm_80 and sm_90.
test-run: check-required $(B)/dice $(B)/emu/test_dice $(if $(BUILD_CUDA),$(B)/gpu/test_dice)
	DICE_BIN=$(B)/dice $(B)/emu/test_dice $(TESTS)

test-gpu:
	@$(MAKE) --no-print-directory test-gpu-run

test-gpu-run: check-required
ifeq ($(BUILD_CUDA),yes)
	@$(MAKE) --no-print-directory $(B)/dice $(B)/gpu/test_dice
	DICE_BIN=$(B)/dice $(B)/gpu/test_dice --cuda-only $(TESTS)
else
	@echo "test-gpu: no CUDA build (nvcc not found or CUDA=0); the GPU suite is skipped"
endif

bench: check-required $(BENCH_C:bench/%.c=$(B)/bench/%)

$(B)/bench/%: bench/%.c $(B)/libdice.a
	@mkdir -p $(@D)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(HOST_DEFS) -o $@ $< $(B)/libdice.a $(LDFLAGS) $(CUDA_LIBS) $(DEP_LIBS)

demo:
	@scripts/install_deps.sh
	@$(MAKE) --no-print-directory demo-run

demo-run: check-required $(B)/dice
	$(B)/dice demo

clean:
	rm -rf build build-san build-gpu-bundle

-include $(shell find $(B) -name '*.d' 2>/dev/null)
