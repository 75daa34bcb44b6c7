"""Progress bars and the end-of-run summary (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.run import RunEvents, RunResult


class RichRunEvents(RunEvents):
    def __init__(self, console: Console, enabled: bool = True):
        super().__init__()
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self._tasks_bar = None
        self._passed = 0
        self._trajs = 0
        self.on_plan = self._plan
        self.on_unit_done = self._unit_done
        self.on_stage = self._stage
        self.on_unit_failed = self._unit_failed

    def __enter__(self) -> "RichRunEvents":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def _plan(self, tasks: int, units: int, pending: int) -> None:
        done_tasks = tasks  # refined below as units finish
        self.console.print(f"[bold]{tasks}[/] tasks in {units} units; {units - pending} already done, {pending} to run")
        self._tasks_bar = self.progress.add_task("rollout (tasks)", total=done_tasks)
        self.progress.update(self._tasks_bar, completed=0)
        self._skipped_units = units - pending

    def _unit_done(self, unit, trajectories) -> None:
        self._trajs += len(trajectories)
        self._passed += sum(1 for t in trajectories if t.verdict and t.verdict.passed)
        if self._tasks_bar is not None:
            self.progress.update(
                self._tasks_bar,
                advance=len(unit.tasks),
                description=f"rollout (tasks) · {self._trajs} trajectories · {self._passed} passed",
            )

    def _unit_failed(self, unit, error: str) -> None:
        self.console.print(f"[red]unit {unit.id} failed[/]: {error}")

    def _stage(self, name: str) -> None:
        if name != "rollout":
            self.console.print(f"· {name}")


def print_summary(console: Console, result: RunResult) -> None:
    r = result.report
    table = Table(title=f"trajforge run · {r.domain}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("tasks", r.tasks),
        ("units (run now / resumed)", f"{r.units_run_now} / {r.units_resumed}"),
        ("trajectories", r.trajectories),
        ("  originals / branches", f"{r.originals} / {r.branches}"),
        ("passed", r.passed),
        ("failed", r.failed),
        ("pass rate (originals)", f"{r.pass_rate:.1%}"),
        ("branch yield (rescued / branched)", f"{r.rescued_parents} / {r.branched_parents}"),
        ("dedupe removed (exact / near)", f"{r.dedupe_removed_exact} / {r.dedupe_removed_near}"),
        ("shards written", f"{r.shard_files} files, {r.shard_rows} rows"),
        ("tokens (loss-carrying)", f"{r.tokens} ({r.loss_tokens})"),
        ("generated tokens/s", r.completion_tokens_per_s),
        ("wall time", f"{r.wall_s:.1f} s"),
        ("run folder", str(result.run_dir.resolve())),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
