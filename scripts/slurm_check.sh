#!/usr/bin/env bash
# The cluster recipe of the documentation run on a real SLURM: a one-node cluster on this machine.
#
#   scripts/slurm_check.sh            (as root on Debian/Ubuntu; from any folder)
#
# 1. installs Debian's slurm-wlm and munge packages when slurmctld, slurmd, sbatch or munged is missing;
# 2. starts munged with a fresh key, slurmctld and slurmd, with a slurm.conf written for this machine's cores
#    and memory (slurmd -C), all files in a temporary folder, on ports of their own;
# 3. runs the recipe's code block (the one after the "slurm-recipe" marker in docs/cluster.md, or README.md
#    while that page does not exist) as written, with its settings DATA (a tiny synthetic DCASE 2020 set),
#    FLAGS (a quick sub-cluster AdaCos configuration: two units, two epochs) and GPU (the variable
#    SLURM_CHECK_GPU, default empty: this node has no GPU resource; SLURM_CHECK_GPU=--gres=gpu:1 keeps the
#    recipe's own value where slurm.conf declares GPUs);
# 4. waits for the job array and the assemble job, checks that both completed, and compares every score file
#    with a serial run of the same seed (byte for byte);
# 5. stops the daemons it started (by their process ids) and removes its folder, on failure too.
#
# Environment: SLURM_CHECK_GPU (above), SLURM_CHECK_TIMEOUT (seconds to wait for the jobs, default 900),
# SLURM_CHECK_KEEP=1 (keep the temporary folder for inspection), PYTHON (default: python on PATH).
# The python on PATH must have the project installed: the jobs run `python run_dcase2020.py` from the
# repository root, as the recipe says.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
GPU_SETTING=${SLURM_CHECK_GPU:-}
TIMEOUT=${SLURM_CHECK_TIMEOUT:-900}
START=$(date +%s)
say() { echo "slurm_check: $*"; }
fail() { echo "slurm_check: FAILED: $*" >&2; exit 1; }

# --- 1. packages ------------------------------------------------------------------------------------------
missing=()
for tool in slurmctld slurmd sbatch squeue scontrol scancel munged mungekey; do
    command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 \
        || missing+=("$tool")
done
export PATH="$PATH:/usr/sbin:/sbin"
if ((${#missing[@]})); then
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    [[ $(id -u) == 0 ]] || fail "not root: install slurm-wlm and munge (apt-get install slurm-wlm munge) or run as root"
    command -v apt-get >/dev/null || fail "no apt-get: install SLURM and MUNGE with this system's package manager"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# --- 2. a one-node cluster ------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/slurm_check.XXXXXX)
chmod 700 "$WORK"
PIDS=()
cleanup() {
    local status=$?
    if [[ -n ${SLURM_CONF:-} && -f ${SLURM_CONF} ]]; then
        scancel --quiet --user "$(id -un)" 2>/dev/null || true
    fi
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do  # slurmd, slurmctld, munged: the reverse of their start
        kill "${PIDS[i]}" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "${PIDS[i]}" 2>/dev/null || break; sleep 0.1; done
        kill -9 "${PIDS[i]}" 2>/dev/null || true
    done
    if ((status != 0)); then
        for log in "$WORK"/*.log "$WORK"/out/slurm-*.out; do
            [[ -f $log ]] && { echo "--- $log (last lines)"; tail -n 20 "$log"; } >&2
        done
    fi
    if [[ ${SLURM_CHECK_KEEP:-0} == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mkdir -p "$WORK"/{munge,state,spool,out}
chmod 700 "$WORK/munge"
mungekey --create --keyfile="$WORK/munge/munge.key" 2>/dev/null \
    || dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1 count=1024 status=none
chmod 400 "$WORK/munge/munge.key"
SOCKET="$WORK/munge/munge.socket"
munged --foreground --force --key-file="$WORK/munge/munge.key" --socket="$SOCKET" \
    --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munged.log" --seed-file="$WORK/munge/seed" \
    >"$WORK/munged.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [[ -S $SOCKET ]] && break; sleep 0.1; done
[[ -S $SOCKET ]] || fail "munged did not start (see $WORK/munged.log)"

HOST=$(hostname -s)
NODE=$(slurmd -C | head -n 1)                      # NodeName=<host> CPUs=... RealMemory=... of this machine
CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$NODE")
export SLURM_CONF="$WORK/slurm.conf"
cat >"$SLURM_CONF" <<EOF
# one-node cluster written by scripts/slurm_check.sh
ClusterName=asdcheck
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=check Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i -f "$SLURM_CONF" >"$WORK/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" >"$WORK/slurmd.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
    [[ $state == idle ]] && break
    sleep 0.3
done
[[ ${state:-} == idle ]] || fail "the node did not come up (state '${state:-none}'; see $WORK/slurmctld.log, slurmd.log)"
say "one-node cluster up: $HOST, $CPUS CPUs ($(($(date +%s) - START)) s)"

# --- 3. the recipe, as the documentation shows it -------------------------------------------------------
DOC="$REPO/docs/cluster.md"
[[ -f $DOC ]] || DOC="$REPO/README.md"
RECIPE=$(awk '/<!-- slurm-recipe/ {marked = 1; next}
              marked && /^ *```bash/ {inside = 1; next}
              inside && /^ *```/ {exit}
              inside {sub(/^  /, ""); print}' "$DOC")
grep -q 'sbatch --parsable --array' <<<"$RECIPE" || fail "no slurm-recipe block found in $DOC"
# the recipe's three settings are replaced by this check's; every other line runs as written
BODY=$(grep -v -E '^(DATA|FLAGS|GPU)=' <<<"$RECIPE")
[[ $(grep -c -E '^(DATA|FLAGS|GPU)=' <<<"$RECIPE") == 3 ]] || fail "$DOC: the recipe must set DATA, FLAGS and GPU"

"$PYTHON" -m asdcore.synthetic 2020 "$WORK/data" --preset tiny --seed 2 >/dev/null
printf 'epochs: 2\nsubclusters: [1, 2]\nbatch_size: 16\n' >"$WORK/tiny.yaml"
DATA="$WORK/data"
COMMON="--quick --config $WORK/tiny.yaml --experiment subclusters --seed 7"
FLAGS="$COMMON --out $WORK/array"
GPU="$GPU_SETTING"
export ASD_CACHE_DIR="$WORK/cache" SBATCH_OUTPUT="$WORK/out/slurm-%j.out"
cd "$REPO"
say "running the recipe of ${DOC#"$REPO"/}:"
sed 's/^/    /' <<<"$BODY"
SUBMITTED=$(bash -euo pipefail -c "DATA='$DATA'; FLAGS='$FLAGS'; GPU='$GPU'
$BODY
echo \"array job \$JOB\"")
ARRAY_JOB=$(sed -n 's/^array job \([0-9]*\)$/\1/p' <<<"$SUBMITTED")
ASSEMBLE_JOB=$(sed -n 's/^Submitted batch job \([0-9]*\)$/\1/p' <<<"$SUBMITTED")
[[ $ARRAY_JOB =~ ^[0-9]+$ && $ASSEMBLE_JOB =~ ^[0-9]+$ ]] || fail "the recipe printed no job ids: $SUBMITTED"
say "job array $ARRAY_JOB, assemble job $ASSEMBLE_JOB submitted"

# the serial run of the same seed, while the jobs run
"$PYTHON" run_dcase2020.py subcluster-adacos --data-root "$DATA" $COMMON --out "$WORK/serial" \
    >"$WORK/serial.log" 2>&1 || fail "the serial run failed (see $WORK/serial.log)"

# --- 4. wait, check, compare ------------------------------------------------------------------------------
job_states() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort -u | tr '\n' ' '; }
deadline=$(($(date +%s) + TIMEOUT))
while :; do
    states="$(job_states "$ARRAY_JOB")/ $(job_states "$ASSEMBLE_JOB")"
    grep -q -E 'PENDING|RUNNING|CONFIGURING|COMPLETING' <<<"$states" || break
    (($(date +%s) < deadline)) || fail "jobs not finished after $TIMEOUT s ($states)"
    sleep 2
done
[[ $(job_states "$ARRAY_JOB") == "COMPLETED " ]] || fail "job array $ARRAY_JOB: $(job_states "$ARRAY_JOB")"
[[ $(job_states "$ASSEMBLE_JOB") == "COMPLETED " ]] || fail "assemble job $ASSEMBLE_JOB: $(job_states "$ASSEMBLE_JOB")"
ARRAY_RUN=$(find "$WORK/array" -name units.csv -printf '%h\n')
SERIAL_RUN=$(find "$WORK/serial" -name units.csv -printf '%h\n')
[[ -f $ARRAY_RUN/assembled.json ]] || fail "$ARRAY_RUN: not assembled"
n_scores=$(find "$SERIAL_RUN/scores" -name '*.csv' | wc -l)
((n_scores > 0)) || fail "the serial run wrote no score files"
diff -r "$SERIAL_RUN/scores" "$ARRAY_RUN/scores" >"$WORK/scores.diff" \
    || fail "score files differ between the job array and the serial run: $(head -c 2000 "$WORK/scores.diff")"
units=$(($(wc -l <"$ARRAY_RUN/units.csv") - 1))
say "OK: $units units as a job array + assemble job; all $n_scores score files identical to the serial run" \
    "($(($(date +%s) - START)) s in all)"
