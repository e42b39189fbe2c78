#!/usr/bin/env bash
# Mutation testing (mutmut) of the modules where a bug costs most; not part of CI (tens of minutes).
# Runs in a scratch copy of the tree, so the checkout is never touched; mutmut goes into a virtual
# environment there that sees the project's installed packages. Prints the score of each module and
# writes every surviving mutant, with its diff, to /tmp/jarvis-mutation-report.txt (or $MUTATION_REPORT).
#   bash scripts/mutation.sh            # all modules in scripts/mutation.cfg
#   bash scripts/mutation.sh store      # only the modules whose path contains "store"
# KEEP_MUTATION_WORK=1 keeps the scratch copy (its path is printed) to inspect mutmut's state.
# MUTANTS="name-or-glob ..." runs only those mutants (e.g. the survivors of an earlier report, after new tests):
#   MUTANTS='jarvis.files.url_fetch.x__parse__mutmut_*' bash scripts/mutation.sh url_fetch
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REPORT=${MUTATION_REPORT:-${TMPDIR:-/tmp}/jarvis-mutation-report.txt}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jarvis-mutation.XXXXXX")
[ -z "${KEEP_MUTATION_WORK:-}" ] || echo "scratch copy: $WORK"
trap '[ -n "${KEEP_MUTATION_WORK:-}" ] || rm -rf "$WORK"' EXIT
cp -r jarvis tests bench pyproject.toml config.yaml examples "$WORK/"
cp scripts/mutation.cfg "$WORK/setup.cfg"
if [ $# -gt 0 ]; then   # keep only the only_mutate lines naming the given modules
  python - "$WORK/setup.cfg" "$@" <<'PY'
import re, sys
path, wanted = sys.argv[1], sys.argv[2:]
text = open(path).read()
head, block, tail = re.split(r"(?m)(^only_mutate =\n(?:    .*\n)+)", text, maxsplit=1)
kept = [line for line in block.splitlines()[1:] if any(w in line for w in wanted)]
if not kept:
    sys.exit(f"no module in scripts/mutation.cfg matches {wanted}")
open(path, "w").write(head + "only_mutate =\n" + "\n".join(kept) + "\n" + tail)
PY
fi
python -m venv --system-site-packages "$WORK/.venv"
"$WORK/.venv/bin/python" -m pip install -q "mutmut==3.8.1" > "$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; exit 1; }
cd "$WORK"
export HF_HUB_OFFLINE=1
start=$(date +%s)
set -f  # MUTANTS holds globs for mutmut, not for the shell
# shellcheck disable=SC2086  # MUTANTS is a space-separated list of names or globs
"$WORK/.venv/bin/mutmut" run ${MUTANTS:-} > "$WORK/run.log" 2>&1 || { tail -c 3000 "$WORK/run.log"; exit 1; }
"$WORK/.venv/bin/python" - "$REPORT" "$(( $(date +%s) - start ))" <<'PY'
import re, subprocess, sys
from collections import Counter, defaultdict
report, seconds = sys.argv[1], sys.argv[2]
mutmut = sys.prefix + "/bin/mutmut"
lines = subprocess.run([mutmut, "results", "--all", "true"], capture_output=True, text=True).stdout.splitlines()
by_module: dict[str, Counter] = defaultdict(Counter)
survivors: dict[str, list[str]] = defaultdict(list)
for line in lines:
    name, _, status = line.strip().rpartition(": ")
    if status == "not checked":  # outside the MUTANTS selection
        continue
    module = re.sub(r"\.x[_ǁ].*$", "", name)
    by_module[module][status] += 1
    if status in ("survived", "no tests"):
        survivors[module].append(name)
out = [f"mutmut 3.8.1, {seconds} s; score = killed (incl. timeouts) / all mutants", ""]
for module, counts in sorted(by_module.items()):
    total = sum(counts.values())
    killed = counts["killed"] + counts["timeout"]
    out.append(f"{module:40} {killed:4}/{total:<4} killed {100 * killed / total:5.1f}%   "
               + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("killed",)))
print("\n".join(out))
with open(report, "w") as f:
    f.write("\n".join(out) + "\n\n# surviving mutants\n")
    for module, names in sorted(survivors.items()):
        for name in names:
            diff = subprocess.run([mutmut, "show", name], capture_output=True, text=True).stdout
            change = [l for l in diff.splitlines() if l[:1] in "+-" and l[:3] not in ("+++", "---")]
            f.write(f"\n{name}\n" + "\n".join("    " + l for l in change) + "\n")
print(f"surviving mutants, with their diffs: {report}")
PY
