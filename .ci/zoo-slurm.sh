#!/usr/bin/env bash
# The zoo on a real (one-node) Slurm cluster and on the local engine, end to end:
#   1. brings up the cluster (.ci/slurm.sh up; down again on exit);
#   2. submits a three-model manifest with --engine slurm, cancels one model's training while it
#      runs, waits, and checks that only that model is unfinished and that `zoo status` shows its
#      training as cancelled;
#   3. resubmits: only the cancelled model is submitted (its training resumes from its
#      checkpoint), a second resubmission while it is queued submits nothing, and no finished
#      job ran twice;
#   4. runs the same manifest with --engine local, and checks that both tables hold every model
#      with its accuracy and are equal apart from timings; browser-checks zoo.html.
#
#   .ci/zoo-slurm.sh          (as root, as CI runs; about two minutes on 2 cores)
#
# Work goes to target/ci-zoo/ (removed first).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_PROFILE_RELEASE_DEBUG=0
cargo build --release --quiet
bin=$PWD/target/release/arithlens
work=$PWD/target/ci-zoo
rm -rf "$work"
mkdir -p "$work"
manifest=$work/ci.toml
cat >"$manifest" <<'TOML'
[zoo]
name = "ci"
[eval]
per_class = 200
[analyze]
questions = 200
pairs = 10
siblings = 0
[slurm]
cpus_per_task = 1
time = "00:20:00"
[[model]]
preset = "tiny"
set = ["steps=1500"]
paper = { nines = { add = 4 }, note = "a figure for the check" }
[[model]]
preset = "tiny_sub"
set = ["steps=3000", "checkpoint_every=100"]
[[model]]
preset = "tiny_mix"
set = ["steps=1000"]
stages = ["train", "eval", "report"]
TOML

.ci/slurm.sh up
trap '.ci/slurm.sh down' EXIT

fail() { echo "zoo-slurm: $*" >&2; exit 1; }
ours() { squeue -h -r -o '%F_%K %j %T' | grep ' zoo-ci-' || true; }
wait_queue_empty() {
    for _ in $(seq 600); do
        [ -z "$(ours)" ] && return 0
        sleep 1
    done
    ours
    fail "the zoo's jobs did not finish within 10 minutes"
}

root=$work/slurm
$bin zoo run "$manifest" --engine slurm --root "$root" --dry-run >"$work/dry-run.txt"
grep -q '^#SBATCH --dependency=aftercorr:<zoo-ci-train>$' "$work/dry-run.txt" || fail "dry run lacks the per-task dependency"
$bin zoo run "$manifest" --engine slurm --root "$root" 2>&1 | tee "$work/submit1.txt"

# Cancel tiny_sub's training (array task 1) once it runs and has saved a checkpoint.
for _ in $(seq 300); do
    [ -e "$root/tiny_sub/checkpoint.safetensors" ] && break
    sleep 0.2
done
task=$(squeue -h -r -o '%F_%K %j %T' | awk '$2 == "zoo-ci-train" && $1 ~ /_1$/ && $3 == "RUNNING" {print $1}')
[ -n "$task" ] || fail "tiny_sub's training was not running when it was to be cancelled"
echo "cancelling $task (tiny_sub's training)"
scancel "$task"
wait_queue_empty
$bin zoo status "$manifest" --root "$root" | tee "$work/status1.txt"
grep -qE '^tiny +done +done +done +done$' "$work/status1.txt" || fail "tiny should be done"
grep -qE '^tiny_mix +done +done +- +done$' "$work/status1.txt" || fail "tiny_mix should be done"
grep -qE '^tiny_sub +cancelled ' "$work/status1.txt" || fail "tiny_sub's training should show as cancelled"

# Resubmit: only tiny_sub; again at once: nothing (it is queued or running).
$bin zoo run "$manifest" --engine slurm --root "$root" 2>&1 | tee "$work/submit2.txt"
grep -q 'submitted train array .* (1 model(s))' "$work/submit2.txt" || fail "the resubmission should hold tiny_sub alone"
$bin zoo run "$manifest" --engine slurm --root "$root" 2>&1 | tee "$work/submit3.txt"
grep -q '^0 array(s) submitted' "$work/submit3.txt" || fail "a resubmission while tiny_sub is queued submitted again"
wait_queue_empty
$bin zoo status "$manifest" --root "$root" | tee "$work/status2.txt"
grep -q '^11/11 jobs done' "$work/status2.txt" || fail "not every job is done after the resubmission"
grep -q -- '--resume' "$root/tiny_sub/logs/train.log" || fail "tiny_sub's training did not resume from its checkpoint"
for m in tiny tiny_mix; do
    for s in train eval report; do
        n=$(grep -c '^== zoo: .* '"$s"' ' "$root/$m/logs/$s.log")
        [ "$n" = 1 ] || fail "$s of $m ran $n times"
    done
done

# The same manifest on the local engine, one thread per job as on Slurm.
local_root=$work/local
$bin --threads 2 zoo run "$manifest" --jobs 2 --root "$local_root"
$bin zoo table "$manifest" --root "$root"
$bin zoo table "$manifest" --root "$local_root"
python3 - "$root/zoo.json" "$local_root/zoo.json" <<'PY'
import json, sys
tables = [json.load(open(p)) for p in sys.argv[1:]]
for t in tables:
    assert [r["model"] for r in t["rows"]] == ["tiny", "tiny_sub", "tiny_mix"], t["rows"]
    for r in t["rows"]:
        assert r["per_op"] and r["final_loss"] is not None and r["report"], r
        assert r["timing"]["train_seconds"] > 0, r
        r.pop("timing")
    assert t["rows"][0]["per_op"][0]["paper_nines"] == 4
    assert [o["op"] for o in t["rows"][2]["per_op"]] == ["add", "sub"]
assert tables[0] == tables[1], "the Slurm and local tables differ apart from timings"
print("zoo-slurm: the Slurm and local tables are equal apart from timings")
PY
if [ "${ARITHLENS_SKIP_BROWSER:-0}" != 1 ]; then .ci/browser-check.sh "$local_root/zoo.html" 2 1; fi
echo "zoo-slurm: ok"
