"""A run that a scheduler stops: it saves where it is, exits with 75, and the same command continues it, to
the same weights as a run that was never stopped (one process and two)."""

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kdiff_gc.preemption import STOPPED_EXIT, StopRequest, outlive_the_first, signal_numbers
from test_train import BIN, ENV, ROOT, TINY, TORCHRUN, metrics, write_config

TORCHRUN_BIN = [str(BIN / "torchrun")]
END = 80  # steps; the tiny model runs about 40 a second on this CPU, so a stop lands mid-run


def command(config: Path, out: str, launcher: list[str], *extra: str) -> list[str]:
    return [*launcher, str(ROOT / "train_gc.py"), "--config", str(config), "--seed", "5", "--demo-every", "0",
            "--save-every", "1000", "--end-step", str(END), "--num-workers", "0", "--out-dir", out, *extra]


def rows(path: Path) -> int:
    try:
        with open(path, newline="") as f:
            return sum(1 for _ in csv.reader(f)) - 1
    except FileNotFoundError:
        return 0


def stop_after(cmd: list[str], cwd: Path, out: Path, n_rows: int, signum: int, to_one_worker: bool):
    """Start ``cmd``; once its metrics hold ``n_rows`` rows, send ``signum`` to it (or, under torchrun, to
    one of its two workers only); return the finished process and its output."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 300
    while rows(out / "model_metrics.csv") < n_rows and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before the signal: raise END"
    if to_one_worker:
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 2, workers
        os.kill(int(max(workers, key=int)), signum)
    else:
        proc.send_signal(signum)
    output, _ = proc.communicate(timeout=300)
    return proc, output


@pytest.mark.parametrize("launcher", [[sys.executable], TORCHRUN], ids=["one-process", "torchrun-2"])
def test_stopped_twice_and_run_again_with_the_same_command_equals_an_uninterrupted_run(tmp_path, launcher):
    config = write_config(tmp_path, {**TINY, "consistency": {**TINY["consistency"], "total_steps": 200}})
    whole = subprocess.run(command(config, "whole", launcher), cwd=tmp_path, env=ENV, capture_output=True,
                           text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    two = launcher is TORCHRUN
    steps = []
    for n_rows, signum in ((15, signal.SIGTERM), (45, signal.SIGUSR1)):
        proc, output = stop_after(command(config, "parts", launcher), tmp_path, tmp_path / "parts", n_rows,
                                  signum, to_one_worker=two)
        # torchrun reports its workers' exit codes and exits 1 itself. It reports the workers that had exited
        # when it noticed the first, and ends the others with SIGTERM, which a stopping worker takes for the
        # stop it is already making: every code it reports is 75
        assert proc.returncode == (1 if two else STOPPED_EXIT), output[-3000:]
        if two:
            codes = re.findall(r"exitcode\s*: (-?\d+)", output)
            assert codes and set(codes) == {str(STOPPED_EXIT)}, output[-3000:]
        state = json.loads((tmp_path / "parts" / "model_state.json").read_text())
        step = int(state["latest_checkpoint"].removeprefix("model_").removesuffix(".pth"))
        who = "a signal to another process" if two and "Stopped by SIG" not in output else signum.name
        assert f"Stopped by {who} at step {step}: the same command continues the run" in output
        assert [int(r["step"]) for r in metrics(tmp_path / "parts" / "model_metrics.csv")] == list(
            range(1, step + 1))
        steps.append(step)
    assert n_rows <= steps[1] < END and steps[0] < steps[1]
    last = subprocess.run(command(config, "parts", launcher), cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert last.returncode == 0, last.stderr[-3000:]
    assert f"Resuming from {Path('parts') / f'model_{steps[1]:08}.pth'} at step {steps[1]}" in last.stdout
    assert metrics(tmp_path / "whole" / "model_metrics.csv") == metrics(
        tmp_path / "parts" / "model_metrics.csv")
    a = torch.load(tmp_path / "whole" / f"model_{END:08}.pth", weights_only=True)
    b = torch.load(tmp_path / "parts" / f"model_{END:08}.pth", weights_only=True)
    for key in ("model", "model_ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key


def test_a_save_every_few_minutes_is_learnt_one_step_late_by_every_process(tmp_path):
    """With a save due at every step (1e-9 minutes), the flag raised at step k is read with step k's
    statistics after step k + 1 has run: saves land on every second step."""
    config = write_config(tmp_path)
    out = subprocess.run([sys.executable, str(ROOT / "train_gc.py"), "--config", str(config), "--seed", "0",
                          "--demo-every", "0", "--end-step", "7", "--save-every-minutes", "1e-9",
                          "--out-dir", "run"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pth")) == [
        f"model_{s:08}.pth" for s in (2, 4, 6, 7)]


def test_a_stop_request_keeps_the_first_signal_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGUSR1)
    with StopRequest([signal.SIGUSR1, signal.SIGUSR2]) as stop:
        assert stop.received is None and not stop.save_due()
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR1)  # a second signal, as during the save: noted, not acted on
        time.sleep(0.01)
        assert stop.received == signal.SIGUSR2
    assert signal.getsignal(signal.SIGUSR1) == before


def test_a_stop_request_that_the_run_outlasts_ignores_the_signals_after_it_exits():
    before = signal.getsignal(signal.SIGUSR2)
    try:
        with StopRequest([signal.SIGUSR2]) as stop:
            stop.outlast()
        os.kill(os.getpid(), signal.SIGUSR2)  # would end this process, were the default handler back
        time.sleep(0.01)
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_signal_names_are_read_with_or_without_sig_and_uncatchable_ones_refused():
    assert signal_numbers("TERM, usr1") == [signal.SIGTERM, signal.SIGUSR1]
    assert signal_numbers("SIGINT") == [signal.SIGINT] and signal_numbers("") == []
    for bad in ("KILL", "SIGSTOP", "NOPE"):
        with pytest.raises(ValueError, match=repr(bad)):
            signal_numbers(bad)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(config: Path, out: str, cwd: Path) -> list[subprocess.Popen]:
    """Two simulated nodes of one process each: torchrun --nnodes 2, rendezvous on 127.0.0.1."""
    port = free_port()
    return [subprocess.Popen(command(config, out, [*TORCHRUN_BIN, "--nnodes", "2", "--nproc_per_node", "1",
                                                   "--node_rank", str(rank), "--master_addr", "127.0.0.1",
                                                   "--master_port", str(port)]),
                             cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for rank in (0, 1)]


def test_two_nodes_stopped_by_sigterm_to_both_and_started_again_equal_an_uninterrupted_run(tmp_path):
    """As a scheduler stops a two-node job: SIGTERM to each node's torchrun, which passes it to its worker;
    the same two commands, started again, continue the run to the uninterrupted run's weights."""
    config = write_config(tmp_path, {**TINY, "consistency": {**TINY["consistency"], "total_steps": 200}})
    for proc in two_nodes(config, "whole", tmp_path):
        assert proc.wait(timeout=600) == 0, proc.communicate()[0][-3000:]
    nodes = two_nodes(config, "parts", tmp_path)
    deadline = time.monotonic() + 300
    while rows(tmp_path / "parts" / "model_metrics.csv") < 20 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert all(node.poll() is None for node in nodes), "the run ended before the signal: raise END"
    for node in nodes:
        node.send_signal(signal.SIGTERM)
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    step = int(json.loads((tmp_path / "parts" / "model_state.json").read_text())["latest_checkpoint"][6:14])
    assert 20 <= step < END
    # the agents, signalled themselves, report no exit codes; the main worker says where it stopped
    assert f"Stopped by SIGTERM at step {step}: the same command continues the run" in outputs[0]
    for node in two_nodes(config, "parts", tmp_path):
        output = node.communicate(timeout=600)[0]
        assert node.returncode == 0, output[-3000:]
    a = torch.load(tmp_path / "whole" / f"model_{END:08}.pth", weights_only=True)
    b = torch.load(tmp_path / "parts" / f"model_{END:08}.pth", weights_only=True)
    for key in ("model", "model_ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key


def test_a_worker_that_dies_mid_run_stops_the_others_with_one_line(tmp_path):
    """SIGKILL to one of two workers: the other ends within seconds (gloo's connection to it resets) with
    one error line of its own, and the last checkpoint stays."""
    config = write_config(tmp_path, {**TINY, "consistency": {**TINY["consistency"], "total_steps": 200}})
    proc = subprocess.Popen(command(config, "run", TORCHRUN, "--save-every", "5"), cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while rows(tmp_path / "run" / "model_metrics.csv") < 12 and time.monotonic() < deadline:
        time.sleep(0.005)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    killed_at = time.monotonic()
    os.kill(int(max(workers, key=int)), signal.SIGKILL)
    output = proc.communicate(timeout=300)[0]
    assert time.monotonic() - killed_at < 60
    errors = [line for line in output.replace("\r", "\n").splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: another process stopped or cannot be reached (RuntimeError: "), output[-3000:]
    assert "[rank0]: Traceback" not in output
    assert json.loads((tmp_path / "run" / "model_state.json").read_text())["latest_checkpoint"].startswith(
        "model_0000001")


def _worker(ready):
    outlive_the_first([signal.SIGTERM])
    ready.set()
    time.sleep(60)


def test_a_data_worker_outlives_the_first_signal_and_ends_on_the_next():
    import multiprocessing

    ready = multiprocessing.Event()
    worker = multiprocessing.Process(target=_worker, args=(ready,))
    worker.start()
    assert ready.wait(30)
    worker.terminate()  # the scheduler's SIGTERM
    worker.join(0.5)
    assert worker.is_alive()
    worker.terminate()  # the loader's, or Python's at exit
    worker.join(10)
    assert worker.exitcode == -signal.SIGTERM


def test_a_signal_to_every_process_of_the_job_data_workers_included_stops_and_saves(tmp_path):
    """As SLURM signals a job step: SIGTERM to the whole process group, the data workers too."""
    config = write_config(tmp_path, {**TINY, "consistency": {**TINY["consistency"], "total_steps": 200}})
    cmd = command(config, "run", [sys.executable])
    cmd[cmd.index("--num-workers") + 1] = "2"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while rows(tmp_path / "run" / "model_metrics.csv") < 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGTERM)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == STOPPED_EXIT, output[-3000:]
    step = int(json.loads((tmp_path / "run" / "model_state.json").read_text())["latest_checkpoint"][6:14])
    assert f"Stopped by SIGTERM at step {step}" in output and 10 <= step < END


SLOW_SAVE = '''import os, pathlib, time
if "TEST_SLOW_SAVE" in os.environ:  # each checkpoint save takes 2 s, and says when it is under way
    import torch
    save = torch.save

    def slow(obj, f, *a, **k):
        save(obj, f, *a, **k)
        if isinstance(obj, dict) and "model_ema" in obj:
            pathlib.Path(os.environ["TEST_SLOW_SAVE"]).touch()
            time.sleep(2)
    torch.save = slow
'''


def test_sigterm_during_a_checkpoint_save_finishes_it_and_stops_in_one_line(tmp_path):
    """The signal lands while torch.save writes: the save completes, the run stops there with 75 and its line,
    and no temporary file is left."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_SAVE)
    saving = tmp_path / "saving"
    env = {**ENV, "PYTHONPATH": str(tmp_path / "site"), "TEST_SLOW_SAVE": str(saving)}
    config = write_config(tmp_path, {**TINY, "consistency": {**TINY["consistency"], "total_steps": 200}})
    # flags given again replace command()'s
    proc = subprocess.Popen(command(config, "out", [sys.executable], "--save-every", "5"), cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not saving.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == STOPPED_EXIT, output[-3000:]
    step = int(json.loads((tmp_path / "out" / "model_state.json").read_text())["latest_checkpoint"][6:14])
    assert f"Stopped by SIGTERM at step {step}: the same command continues the run" in output
    assert torch.load(tmp_path / "out" / f"model_{step:08}.pth", weights_only=True)["step"] == step
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_a_killed_writers_temporary_files_are_removed_at_the_next_start(tmp_path):
    """SIGKILL during a save leaves ``.{file}.*.tmp``: the next start of the run removes its own, and not
    another run's whose name it begins."""
    config = write_config(tmp_path)
    run = subprocess.run(command(config, "out", [sys.executable], "--end-step", "2"), cwd=tmp_path, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    mine = [tmp_path / "out" / f".model_{n}.x1y2.tmp" for n in ("00000003.pth", "state.json", "metrics.csv")]
    theirs = tmp_path / "out" / ".model_b_00000003.pth.x1y2.tmp"
    for path in [*mine, theirs]:
        path.write_bytes(b"partial")
    again = subprocess.run(command(config, "out", [sys.executable], "--end-step", "3"), cwd=tmp_path, env=ENV,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "notice: removed 3 unfinished temporary file(s)" in again.stderr + again.stdout
    assert not any(path.exists() for path in mine) and theirs.read_bytes() == b"partial"


def test_a_stopping_run_that_is_signalled_again_until_it_exits_still_exits_75(tmp_path):
    """torchrun ends the other workers of a stopping run with SIGTERM as soon as one has exited, and a
    scheduler may signal twice: a run that has decided to stop exits 75 whatever arrives while it finishes
    (ending the process group, the interpreter's exit)."""
    config = write_config(tmp_path, {**TINY, "consistency": {**TINY["consistency"], "total_steps": 200}})
    proc = subprocess.Popen(command(config, "out", [sys.executable]), cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while rows(tmp_path / "out" / "model_metrics.csv") < 5 and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGUSR1)
    while proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.001)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == STOPPED_EXIT, output[-3000:]
    assert "Stopped by SIGUSR1 at step" in output
