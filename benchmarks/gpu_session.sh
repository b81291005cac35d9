#!/usr/bin/env bash
# The command of one GPU session (the device tool runs it in a copy of the repo, $OUT comes back):
# installs the wheels the GPU image lacks (.whl/, carried), runs benchmarks/gpu_camvid.py on the carried
# CamVid copy (.camvid/) and packs the archived results, job logs and training curves into $OUT.
#   bash benchmarks/gpu_session.sh --budget 540 --parallel 7
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  ${PYTHON:-python3} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src PYTHONUNBUFFERED=1 SEGSSL_THREADS=${SEGSSL_THREADS:-2}
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
${PYTHON:-python3} -c "import torch, lightning, segmentation_models_pytorch as smp, sklearn; \
print('torch', torch.__version__, 'lightning', lightning.__version__, 'smp', smp.__version__, \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda')" 2>&1 | tee "$OUT/versions.txt"
${PYTHON:-python3} benchmarks/gpu_camvid.py --data "${DATA:-.camvid}" "$@" 2>&1 | tee "$OUT/gpu_camvid.log"
name=gpu_camvid
for a in "$@"; do [[ ${prev:-} == --name ]] && name=$a; prev=$a; done
# what exists of: the tables, the plot, the archived results, and each job's log, curves and config
tar czf "$OUT/results.tgz" $(ls -d BENCHMARKS.md benchmarks/label_efficiency_camvid_gpu.png "benchmarks/results/$name" \
  2>/dev/null) $(find "benchmarks/runs/$name" \( -name job.log -o -name metrics.csv -o -name config.yaml \) 2>/dev/null)
ls -la "$OUT"
