# shellcheck shell=bash
# tools/device-env.sh: sourced by the GPU scripts (gpu-check.sh, nccl-check.sh,
# multi-gpu-check.sh). Unpacks the carried .debs/ (Check, cJSON, PCRE2, fortunes: the GPU
# host lacks them) into /tmp/deps, never into /, and points the compiler, the linker and
# the loader there; puts the CUDA toolkit on PATH; keeps NVLink multicast off in every
# process (NCCL_NVLS_ENABLE=0). Where neither the toolkit nor /usr has nccl.h, NCCL comes
# from the nvidia-nccl Python wheel: DEVICE_ENV_NCCL_HOME is then the NCCL_HOME to build with.
D=/tmp/deps
mkdir -p $D
for f in .debs/*.deb; do [ -e "$f" ] && dpkg -x "$f" $D; done
export CPATH=$D/usr/include:/usr/lib/x86_64-linux-gnu/openmpi/include
export LIBRARY_PATH=$D/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$D/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PKG_CONFIG_PATH=$D/usr/lib/x86_64-linux-gnu/pkgconfig
export PATH=$PATH:/usr/local/cuda/bin NCCL_NVLS_ENABLE=0
DEVICE_ENV_NCCL_HOME=""
if [ ! -e /usr/local/cuda/include/nccl.h ] && [ ! -e /usr/include/nccl.h ]; then
    wheel=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null ||
        python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "nccl"))' 2>/dev/null)
    if [ -n "$wheel" ] && [ -e "$wheel/include/nccl.h" ]; then
        DEVICE_ENV_NCCL_HOME=/tmp/deps/nccl
        mkdir -p "$DEVICE_ENV_NCCL_HOME/lib"
        ln -sfn "$wheel/include" "$DEVICE_ENV_NCCL_HOME/include"
        ln -sf "$(ls "$wheel"/lib/libnccl.so* | head -1)" "$DEVICE_ENV_NCCL_HOME/lib/libnccl.so"
        export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$wheel/lib
    fi
fi
