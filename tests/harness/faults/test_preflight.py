"""Malformed faults are refused before anything starts, one line per problem, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "harness.cli"]


def _refused(faults: str, engines: str = "embedded,cluster", *sets: str) -> list[str]:
    env = {**os.environ, "STREAMGAUGE_BOOTSTRAP": "127.0.0.1:1"}  # nothing may reach for Kafka
    more = [arg for s in sets for arg in ("--set", s)]
    proc = subprocess.run([*CLI, "run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine", engines,
                           "--out", "/nonexistent/out", "--set", f"faults={faults}", *more],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Kafka" not in proc.stdout + proc.stderr
    return proc.stderr.strip().removeprefix("streamgauge: error: ").splitlines()


def test_a_pick_beyond_the_engines_processes_and_a_role_it_lacks_are_one_line_each():
    assert _refused("[{at: 5s, kill: {pick: 3}}, {at: 8s, pause: {role: jobmanager, for: 2s}}, "
                    "{at: 9s, terminate: {pick: 1}}]") == [
        "kill-instance-eos on embedded: faults[0]: kill pick 3 is out of range: the embedded engine runs 3 "
        "instance processes here (pick 0 to 2, or random)",
        "kill-instance-eos on embedded: faults[1]: role 'jobmanager' does not exist in the embedded engine (its "
        "roles: instance; 'worker' means instance)",
        "kill-instance-eos on cluster: faults[0]: kill pick 3 is out of range: the cluster engine runs 3 "
        "taskmanager processes here (pick 0 to 2, or random)",
        "kill-instance-eos on cluster: faults[1]: a pause of the jobmanager needs JobManager failover: set "
        "engine_config.cluster.high_availability: true (a standby JobManager)",
    ]


def test_a_jobmanager_fault_with_high_availability_passes_the_preflight_check():
    assert _refused("[{at: 5s, kill: {role: jobmanager}}, {at: 8s, kill: {pick: 3}}]", "cluster",
                    "engine_config.cluster.high_availability=true") == [
        "kill-instance-eos on cluster: faults[1]: kill pick 3 is out of range: the cluster engine runs 3 "
        "taskmanager processes here (pick 0 to 2, or random)"]


def test_the_taskmanager_option_sets_how_many_can_be_picked():
    assert _refused("[{at: 5s, kill: {pick: 1}}]", "cluster", "engine_config.cluster.taskmanagers=1") == [
        "kill-instance-eos on cluster: faults[0]: kill pick 1 is out of range: the cluster "
        "engine runs 1 taskmanager process here (pick 0 to 0, or random)"]


def test_broker_faults_on_a_cluster_that_is_not_ours_and_malformed_broker_picks_are_one_line_each():
    lines = _refused("[{at: 5s, kill: {role: broker, pick: leader_of_input, restart_after: 10s}}, "
                     "{at: 6s, pause: {role: broker, pick: 4, for: 2s}}, {at: 7s, kill: {pick: controller}}]",
                     engines="embedded")
    assert lines == [
        "kill-instance-eos: broker faults need a 3-node cluster: set kafka: {nodes: 3} in the scenario (it has 1)",
        "kill-instance-eos: broker faults need a cluster streamgauge started (the local provider or `streamgauge "
        "kafka up --nodes 3`); the external cluster at 127.0.0.1:1 is not ours to kill (unset "
        "STREAMGAUGE_BOOTSTRAP, or run `streamgauge kafka down`)",
        "kill-instance-eos on embedded: faults[1]: broker pick 4 is not a node id: the brokers are nodes 1 to 3",
        "kill-instance-eos on embedded: faults[2]: pick controller picks a broker: it needs role: broker (a worker "
        "is picked by index or at random)",
    ]


def test_the_coordinator_of_transactions_is_no_pick_without_transactions():
    lines = _refused("[{at: 5s, kill: {role: broker, pick: txn_coordinator}}]", "embedded",
                     "guarantee=at_least_once", "kafka={nodes: 3}")
    assert lines[1:] == [
        "kill-instance-eos on embedded: faults[0]: pick txn_coordinator needs an engine writing transactions: the "
        "guarantee is at_least_once, not exactly_once"]
    assert "not ours to kill" in lines[0]


def test_the_scenario_syntax_takes_every_broker_pick_and_refuses_another():
    from harness.faults import broker
    from harness.scenario import model

    for pick in (*broker.PICKS, "random", 2):
        fault = model.Fault.model_validate({"at": "5s", "kill": {"role": "broker", "pick": pick}})
        assert fault.kill is not None and fault.kill.pick == pick
    with pytest.raises(ValueError, match="leader_of_input, leader_of_output, txn_coordinator, controller"):
        model.Fault.model_validate({"at": "5s", "kill": {"role": "broker", "pick": "leader_of_everything"}})


def test_network_faults_on_brokers_off_the_bridge_and_pick_all_on_a_process_fault_are_refused():
    lines = _refused("[{at: 5s, partition: {pick: all, for: 5s}}, {at: 6s, kill: {pick: all}}]")
    assert ("kill-instance-eos: network faults need brokers that streamgauge starts for the run on its bridge; the "
            "external cluster at 127.0.0.1:1 is not (unset STREAMGAUGE_BOOTSTRAP)") in lines
    assert lines[-2:] == [
        "kill-instance-eos on embedded: faults[1]: pick all is for network faults (delay, loss, partition); a kill "
        "picks one process: an index or random",
        "kill-instance-eos on cluster: faults[1]: pick all is for network faults (delay, loss, partition); a kill "
        "picks one process: an index or random",
    ]


def test_a_bounded_workload_is_refused_by_the_unbounded_models_one_line_each():
    lines = _refused("[]", "embedded,kafka-streams,quixstreams", "workload.bounded=true")
    assert lines == [
        f"kill-instance-eos on {name}: workload.bounded: the {name} engine's model is unbounded (its job reads its "
        f"input for ever and never finishes by itself); run a bounded workload on an engine of the cluster model"
        for name in ("embedded", "kafka-streams", "quixstreams")]
