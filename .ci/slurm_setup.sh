#!/usr/bin/env bash
# Installs what the Slurm tests need to start clusters of their own: Debian's slurm-wlm
# (slurmctld, slurmd and the client commands) and munge. It configures and starts nothing: each
# test starts its own single-node cluster in a temp directory (own munge key and socket, own
# ports, state and partition; see tests/fixtures/slurm.ts) and stops it when it ends, so the
# suite never uses, changes or submits to a cluster that is already on the machine.
# Installs only under CI=true (from .ci/run, or from the test fixture in CI); never fails: when
# the packages cannot be installed it says so and the Slurm tests skip.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive

need=()
for cmd in slurmctld slurmd sbatch munged; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$cmd")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "slurm-wlm and munge are installed"
  exit 0
fi
if [ "${CI:-}" != "true" ]; then
  echo "warning: ${need[*]} not found; the Slurm tests will skip (install slurm-wlm and munge, or run with CI=true)" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: cannot install slurm-wlm and munge here (needs root and apt-get); the Slurm tests will skip" >&2
  exit 0
fi
apt-get update -q >/dev/null 2>&1 || true
if apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1; then
  echo "installed slurm-wlm and munge"
else
  echo "warning: apt-get install slurm-wlm munge failed; the Slurm tests will skip" >&2
fi
exit 0
