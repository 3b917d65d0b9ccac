#!/usr/bin/env bash
# Opens an infermark HTML report in headless Chromium, takes a screenshot, and checks that every
# chart is laid out with a non-zero size, that the page requested nothing from the network, and
# that the comparison, claims ledger and M(P) sections are there, and that the M(P) chart is drawn.
# Usage: ci/browser-check.sh REPORT.html OUT_DIR
set -euo pipefail
report=$(realpath "$1")
out=$2
mkdir -p "$out"
if ! command -v chromium >/dev/null; then
  echo "installing chromium (Debian package)"
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null
fi
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync)
profile=$(mktemp -d)
trap 'rm -rf "$profile" "$probe"' EXIT

# A copy of the page with a probe that records chart sizes and every resource the page loaded.
probe=$(mktemp --suffix=.html)
sed 's#</body>#<script>window.addEventListener("load",()=>{const c=[...document.querySelectorAll(".chart svg")].map(s=>{const r=s.getBoundingClientRect();return [Math.round(r.width),Math.round(r.height)]});const n=performance.getEntriesByType("resource").map(e=>e.name);const m=document.getElementById("mp-chart");const mp=m?[Math.round(m.getBoundingClientRect().width),Math.round(m.getBoundingClientRect().height)]:null;const p=document.createElement("pre");p.id="probe";p.textContent=JSON.stringify({charts:c,requests:n,mp:mp});document.body.appendChild(p)});</script></body>#' "$report" > "$probe"
dom=$(chromium "${flags[@]}" --user-data-dir="$profile" --virtual-time-budget=3000 --dump-dom "file://$probe" 2>/dev/null)
json=$(printf '%s' "$dom" | sed -n 's#.*<pre id="probe">\(.*\)</pre>.*#\1#p')
[ -n "$json" ] || { echo "browser check: the probe did not run"; exit 1; }
python3 - "$json" <<'PY'
import json, sys
p = json.loads(sys.argv[1])
charts, requests = p["charts"], p["requests"]
assert charts, "no charts in the page"
bad = [c for c in charts if c[0] <= 0 or c[1] <= 0]
assert not bad, f"charts with zero size: {bad}"
assert not requests, f"the page requested: {requests}"
mp = p.get("mp")
assert mp and mp[0] > 0 and mp[1] > 0, f"the M(P) chart is not drawn: {mp}"
print(f"browser check: {len(charts)} charts laid out (e.g. {charts[0][0]}x{charts[0][1]} px), no network requests")
PY
for section in "Claims ledger" "Maturity score M(P)" "Comparison with baseline"; do
  grep -q "$section" <<<"$dom" || { echo "browser check: section '$section' missing"; exit 1; }
done
chromium "${flags[@]}" --user-data-dir="$profile" --window-size=1200,2400 --screenshot="$(realpath "$out")/report.png" "file://$report" >/dev/null 2>&1
test -s "$out/report.png"
echo "browser check: screenshot $out/report.png"
