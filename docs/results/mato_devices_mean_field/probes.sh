#!/usr/bin/env bash
# The single-seed probes of README.md ("Why MATO did not learn at 20 devices"): MATO
# trained 1000 steps (seed 0) in the twin calibrated on the 20-device live bench, with
# one change each to Fig. 4's settings, then 3000 steps at 10 devices (Fig. 3's 3-model
# calibration) with the compact and the mean-field input. Each run's metrics.csv has the
# evaluation reward every 100 steps (committed as probes/<devices>-<name>.csv); its
# summary table compares Greedy on the same tasks.
# From the repository root, after `make test` or `pip install -e '.[cpu,train]'`.
set -euo pipefail
C20=docs/results/mato_devices/share_parameters_20/config.yaml  # Fig. 4's 20-device config
probe() {  # name, then --set overrides
  local name=$1; shift
  testbed train --algo mato -c "$C20" --set train.share_parameters=false \
    --set experiment="probe_$name" --steps 1000 --seed 0 --set train.eval_every=100 \
    --set train.threads=1 "$@"
}
probe compact
probe b1024 --set train.batch_size=1024
probe lrc3e4 --set train.lr_critic=0.0003
probe lra5e3 --set train.lr_actor=0.005
probe h512 --set train.hidden=512
probe noclip --set train.grad_clip_norm=0
probe paper --set train.critic_input=paper
probe mean_field --set train.critic_input=mean_field
# one actor and one critic for all 20 agents (the function sets share_parameters=false first)
probe mean_field_shared --set train.critic_input=mean_field --set train.share_parameters=true

C10=docs/results/mato_models/calibration/3
for input in compact mean_field; do
  testbed train --algo mato -c "$C10/bench.yaml" --set twin.calibration="$C10/calibration.json" \
    --set experiment="probe10_$input" --steps 3000 --seed 0 --set train.batch_size=256 \
    --set train.eval_every=100 --set train.threads=1 --set train.critic_input="$input"
done
