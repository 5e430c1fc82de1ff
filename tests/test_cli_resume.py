"""The command line: a run killed at any moment resumes to the same result; bad input gets one clear line."""
import os, signal, subprocess, sys, time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
VAECAUSAL = [str(Path(sys.executable).parent / 'vaecausal')]   # the console script installed beside this python
ARGS = ['train', '--arch', 'factor_vae', '--hparam', 'disc_hidden=32', '--hparam', 'disc_layers=2', '--procedural',
        '--steps', '80', '--batch-size', '16', '--lr', '1e-3', '--checkpoint-every', '5', '--device', 'cpu']


ENV = {**os.environ, 'PYTHONHASHSEED': '0', 'OMP_NUM_THREADS': '1'}   # one thread: pytest runs two test files at once


def cli_process(*args, **kw):
    "The `vaecausal` console script in a process of its own (conftest's `cli` runs it in this one)."
    env = ENV
    return subprocess.run(VAECAUSAL + list(args), capture_output=True, text=True, cwd=ROOT, env=env, **kw)


def test_module_entry_point_runs():
    r = cli_process('--help')
    assert r.returncode == 0 and 'study' in r.stdout and 'train' in r.stdout


def test_kill_mid_run_then_resume_is_bit_identical(tmp_path):
    full = tmp_path / 'full'
    assert cli_process(*ARGS, '--out', str(full)).returncode == 0
    part = tmp_path / 'part'
    p = subprocess.Popen(VAECAUSAL + ARGS + ['--out', str(part)], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (part / 'ckpt-20').exists() and not (part / 'ckpt-25').exists():
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)                       # no chance to clean up
    p.wait()
    assert not (part / 'model.safetensors').exists(), 'the run finished before it could be killed'
    assert (part / 'LATEST').exists()
    r = cli_process(*ARGS, '--out', str(part))
    assert r.returncode == 0, r.stderr
    a, b = load_file(str(full / 'model.safetensors')), load_file(str(part / 'model.safetensors'))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (full / 'history.csv').read_text() == (part / 'history.csv').read_text()
    assert not list(part.glob('.*.tmp')) and not list(part.glob('.ckpt-*'))    # no half-written leftovers


def test_bad_input_one_line(tmp_path):
    r = cli_process('train', '--arch', 'vae', '--hparam', 'beta=2', '--out', str(tmp_path / 'x'))
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0
    assert 'vae has no hyperparameter(s) beta; valid: posterior_var' in r.stderr
    r = cli_process('study', '--preset', 'bogus', '--out', str(tmp_path / 'p'))
    assert r.returncode == 2 and "unknown preset 'bogus'; choose one of quick, standard, gpu, paper" in r.stderr
    r = cli_process('train', '--arch', 'wae', '--out', str(tmp_path / 'y'))
    assert r.returncode == 2 and 'invalid choice' in r.stderr


def test_study_time_limit_checkpoints_and_exits_3(tmp_path, monkeypatch):
    """The time limit read on a clock that ticks once each time it is read (a training step reads it once), so where
    the study stops does not depend on how busy the machine is. With --workers 1 the study runs in this process."""
    import itertools
    from conftest import cli
    import vaecausal_nb.train as train_module
    ticks = itertools.count()
    monkeypatch.setattr(train_module, '_now', lambda: next(ticks))
    out, spec = tmp_path / 's', tmp_path / 'spec.json'
    spec.write_text('{"name": "late", "archs": ["vae"], "steps": 2000, "probe_steps": 20}')
    args = ['study', '--spec', str(spec), '--workers', '1', '--no-progress', '--out', str(out)]
    r = cli(*args, '--time-limit', '150')
    assert r.returncode == 3, (r.returncode, r.stderr[-2000:])
    assert 'left at the time limit' in r.stdout and 'run the same command again' in r.stdout
    run = next((out / 'runs').iterdir())
    step = int((run / 'LATEST').read_text().split('-')[1])       # checkpointed where it stood, not at a quarter
    assert 0 < step < 150 and step % 500 != 0, step
    assert not (run / 'metrics.json').exists() and not (out / 'report.md').exists()
    r = cli(*args, '--time-limit', '0')                     # no time: nothing starts, nothing changes
    assert r.returncode == 3 and int((run / 'LATEST').read_text().split('-')[1]) == step
