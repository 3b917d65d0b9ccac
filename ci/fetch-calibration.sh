#!/usr/bin/env bash
# Fetches the calibration text that GPTQ and the importance matrix run the real model on: the
# Debian Policy Manual (plain text), shipped by the Debian package debian-policy 4.6.2.0
# (bookworm, licence GPL-2+), as usr/share/doc/debian-policy/policy.txt.gz. English
# technical prose of about 100K SmolLM2 tokens, disjoint from the evaluation text (the Apache
# licence: suites/tests/calibration.rs checks that no 64-token window is shared). Puts it in
# $INFERMARK_MODELS (default: .models/) and checks the SHA-256 of the package and of the text.
# Needs apt-get and dpkg-deb (Debian); idempotent. Called by ci/fetch-models.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${INFERMARK_MODELS:-.models}
text="$dest/debian-policy-4.6.2.0.txt"
deb_sha=ef9d01b625c3b87c3a845c2cd1b66f1a16e9240b2b9e5bee53472a00e8457a39
text_sha=89dba06600463ed858b4ccd3bdf4e72452c512589f1029548346e5284eb71374
check() { echo "$2  $1" | sha256sum --check --status; }
if [ -f "$text" ] && check "$text" "$text_sha"; then
  echo "fetch-calibration: $text present"
  exit 0
fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"
( cd "$work" && { apt-get download -qq debian-policy=4.6.2.0 2>/dev/null \
  || { apt-get update -qq && apt-get download -qq debian-policy=4.6.2.0; }; } )
deb=$(ls "$work"/debian-policy_4.6.2.0_all.deb)
check "$deb" "$deb_sha" \
  || { echo "fetch-calibration: SHA-256 of $deb does not match $deb_sha"; exit 1; }
dpkg-deb -x "$deb" "$work/x"
gzip -dc "$work/x/usr/share/doc/debian-policy/policy.txt.gz" > "$work/policy.txt"
check "$work/policy.txt" "$text_sha" \
  || { echo "fetch-calibration: SHA-256 of policy.txt does not match $text_sha"; exit 1; }
mv "$work/policy.txt" "$text.tmp" && mv "$text.tmp" "$text"
echo "fetch-calibration: $text"
