"""The load as a locustfile: the run's seeded open-loop schedule sent from locust worker processes.

Run by the harness (``--load locust``) as one locust master and its workers,
or with workers on other machines (README: "Load from several machines").
Each worker runs one user whose one task follows the worker's slice of the
schedule (slice = the worker's index of ``--expect-workers``, by partition, as
the built-in generator's processes share it) and never waits on replies:
locust's own pacing is closed-loop and is not used. Every burst of sends is
a locust request event (type ``produce``, name the topic), so locust's
statistics, CSV files and web UI show the load. When its slice is sent, a
worker sends its summary to the master, which writes the merged summary to
``--sg-summary`` and ends the test once every worker has reported.

The master gets the schedule as ``--sg-config`` (the generator's config as
JSON); locust forwards custom arguments to the workers, so a worker on
another machine needs only the master's address. Every machine's clock must
be in sync: the schedule is in wall-clock time.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gevent
from locust import User, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from harness.workload.generator import GeneratorConfig, merge, run

SUMMARY_MESSAGE = "sg_summary"


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--sg-config", default="", help="streamgauge: the load's schedule (generator config JSON)")
    parser.add_argument("--sg-summary", default="", help="streamgauge: where the master writes the merged summary")


@events.init.add_listener
def _on_init(environment: Any, **_kwargs: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    summaries: dict[int, dict[str, Any]] = {}

    def on_summary(environment: Any, msg: Any, **_kw: Any) -> None:
        data = msg.data
        summaries[int(data.get("process", len(summaries)))] = data
        expected = environment.parsed_options.expect_workers
        if len(summaries) >= expected:
            merged = merge([summaries[k] for k in sorted(summaries)])
            path = Path(environment.parsed_options.sg_summary)
            path.with_suffix(".tmp").write_text(json.dumps(merged))
            path.with_suffix(".tmp").replace(path)
            gevent.spawn_later(0.5, environment.runner.quit)  # after this handler returns

    runner.register_message(SUMMARY_MESSAGE, on_summary)


class ScheduleSlice(User):
    """One per worker: sends the worker's slice of the schedule, open loop, then reports and stops."""

    wait_time = constant(0)

    @task
    def follow_schedule(self) -> None:
        env = self.environment
        runner = env.runner
        options = env.parsed_options
        index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        count = int(options.expect_workers) if isinstance(runner, WorkerRunner) else 1
        fields = json.loads(options.sg_config)
        topic = fields["topic"]

        def on_burst(sent: int, seconds: float, size: int) -> None:
            env.events.request.fire(request_type="produce", name=topic, response_time=seconds * 1000,
                                    response_length=size, exception=None, context={"events": sent})

        try:
            cfg = GeneratorConfig(**{**fields, "process": index, "processes": count, "summary_path": ""})
            summary = asdict(run(cfg, on_burst=on_burst, stop={"now": False}))
        except Exception as e:  # noqa: BLE001 - the master must hear of it, or it waits for this worker for ever
            summary = {"process": index, "sent": 0, "acked": 0, "failed": 0, "max_lag_s": 0.0, "valid": False,
                       "reason": f"locust worker {index} failed: {type(e).__name__}: {e}", "t0": fields.get("t0", 0),
                       "stopped_early": True, "per_second": [], "lag_per_second": [], "cpu_s": 0.0,
                       "elapsed_s": 0.0, "traceback": traceback.format_exc()}
        runner.send_message(SUMMARY_MESSAGE, summary)
        raise StopUser
