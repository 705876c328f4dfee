#!/usr/bin/env bash
# For a GPU machine without internet access: download here, on a machine with internet, the wheels
# that benchmarks/gpu_suite.py needs and a usual CUDA image lacks. Such an image has torch,
# torchvision, numpy, scipy, scikit-learn, matplotlib, seaborn, pandas, tqdm and numba, but not
# papermill, ipykernel, umap-learn or pyautoattack. The list is the dependency closure of clead_edu +
# papermill + ipykernel minus those packages, at the versions this repository's tests ran with, for
# Python 3.12 on x86-64 Linux. Wheels land in local/wheels (git-ignored); copy the repository with
# them to the GPU machine (docs/benchmarks.md, "Running the GPU suite") and install there with
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site local/wheels/*.whl
#   export PYTHONPATH=$PWD:/tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${1:-local/wheels}
mkdir -p "$DEST"
PKGS="asttokens==3.0.2 comm==0.2.3 debugpy==1.8.22 entrypoints==0.4.2 executing==2.3.0 fastjsonschema==2.22.3
ipykernel==7.4.0 ipython==9.18.1 ipython-pygments-lexers==1.1.1 ipywidgets==8.1.9 jedi==0.20.1 jsonschema==4.26.0
jsonschema-specifications==2025.9.1 jupyter-client==8.10.0 jupyter-core==5.9.1 jupyterlab-widgets==3.0.17
matplotlib-inline==0.2.2 nbclient==0.11.0 nbformat==5.11.1 nest-asyncio2==1.7.4 papermill==2.7.0 parso==0.8.7
pexpect==4.9.0 platformdirs==4.14.8 prompt-toolkit==3.0.53 ptyprocess==0.7.0 pure-eval==0.2.4 pyautoattack==0.2.0
pynndescent==0.7.0 pyzmq==27.3.0 referencing==0.37.0 rpds-py==2026.9.1 stack-data==0.6.3 tenacity==9.2.1
tornado==6.6.1 traitlets==5.16.1 umap-learn==0.5.12 wcwidth==0.9.4 widgetsnbextension==4.0.16"
PLAT=""
for n in 17 24 27 28 31 34 35; do PLAT="$PLAT --platform manylinux_2_${n}_x86_64"; done
# shellcheck disable=SC2086
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    $PLAT --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$DEST" $PKGS
# pyautoattack ships a 44 MB example model (examples/model_test.pt) that nothing here needs: drop it,
# so that the wheels take about 16 MB to copy instead of about 60 MB.
for w in "$DEST"/pyautoattack-*.whl; do zip -q -d "$w" "pyautoattack/examples/*" || true; done
du -sh --apparent-size "$DEST"
ls "$DEST" | wc -l
