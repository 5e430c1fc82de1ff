"""Fleets: a fleet killed with SIGKILL at any moment and run again ends with the weights and history of a fleet run
straight through, bit for bit (CPU: the loop and threads executors); `vaecausal study --fleet` refuses bad values in
one line."""
import os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
VAECAUSAL = [str(Path(sys.executable).parent / 'vaecausal')]
SCRIPT = '''
import sys
from vaecausal_nb.fleet import train_fleet
from vaecausal_nb.train import TrainConfig
out = sys.argv[1]
cfgs = [TrainConfig(arch='factor_vae', hparams={'gamma': 10.0 * (i + 1), 'disc_hidden': 32, 'disc_layers': 2},
                    dataset_kwargs={'procedural': True}, steps=60, batch_size=16, lr=1e-3, seed=i, device='cpu',
                    checkpoint_every=5, log_every=5, progress=False, out_dir=f'{out}/m{i}') for i in range(3)]
train_fleet(cfgs, mode=sys.argv[2] if len(sys.argv) > 2 else 'auto')
'''


def fleet(out, *extra, wait=True):
    cmd = [sys.executable, '-c', SCRIPT, str(out), *extra]
    env = {**os.environ, 'PYTHONHASHSEED': '0'}
    if extra[:1] == ('loop',): env['OMP_NUM_THREADS'] = '1'     # (threads: the members share the process's 2 threads)
    if wait: return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize('mode', ['loop', 'threads'])
def test_killed_fleet_resumes_bit_identical(tmp_path, mode):
    full, part = tmp_path / 'full', tmp_path / 'part'
    r = fleet(full, mode)
    assert r.returncode == 0, r.stderr
    p = fleet(part, mode, wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and not (part / 'm1' / 'LATEST').exists():   # member 0 done or nearly, member 1 started
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not all((part / f'm{i}' / 'model.safetensors').exists() for i in range(3)), 'the fleet finished first'
    r = fleet(part, mode)
    assert r.returncode == 0, r.stderr
    for i in range(3):
        a = load_file(str(full / f'm{i}' / 'model.safetensors'))
        b = load_file(str(part / f'm{i}' / 'model.safetensors'))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f'member {i} differs'
        assert (full / f'm{i}' / 'history.csv').read_text() == (part / f'm{i}' / 'history.csv').read_text()
        assert not list((part / f'm{i}').glob('.ckpt-*'))


def test_study_fleet_flag_bad_value_one_line(tmp_path):
    r = subprocess.run(VAECAUSAL + ['study', '--preset', 'quick', '--fleet', 'many', '--out', str(tmp_path / 'q')],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0
    assert "--fleet takes a positive integer or 'auto', got 'many'" in r.stderr
    assert not (tmp_path / 'q').exists()
