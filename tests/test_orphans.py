"""A study's whole process tree ends with it (issue #29): the runner killed by SIGKILL once it has measured leaves no
joblib (loky) worker and no resource tracker behind, with --workers 1 (the runner's own DCI pool) as with pool
workers (tests/test_bad_input.py). Idle loky workers used to outlive it by their 300 s idle timeout."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip('psutil')

ROOT = Path(__file__).resolve().parents[1]
VAECAUSAL = [str(Path(sys.executable).parent / 'vaecausal')]
SIZES = {'dci': [200, 100], 'mig': 80, 'sap': [80, 80], 'factor_vae': [10, 10, 100], 'beta_vae': [10, 10], 'irs': 80}
SPEC = {'name': 'orphans', 'archs': ['vae'], 'seeds': [0, 1, 2, 3], 'steps': 40, 'batch_size': 8, 'probe_steps': 5,
        'causal_images': 8, 'modularity_images': 2, 'metric_sizes': SIZES}


def _descendants(pid):
    try: return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess: return []


def _alive(p):
    try: return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess: return False


def _is_loky_worker(p):
    try: return any('loky' in part for part in p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied): return False


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='PR_SET_PDEATHSIG is Linux-only')
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason='one core: DCI is fitted without a pool of processes')
def test_killed_runner_leaves_no_process_behind(tmp_path):
    (tmp_path / 'spec.json').write_text(json.dumps(SPEC))
    p = subprocess.Popen(VAECAUSAL + ['study', '--spec', str(tmp_path / 'spec.json'), '--out', str(tmp_path / 'root'),
                                      '--workers', '1', '--no-progress', '--no-report'], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, tree = time.time() + 300, []                # a bound on getting there, not on speed
        while time.time() < deadline and p.poll() is None:    # the first run measured, DCI's pool of processes up
            tree = _descendants(p.pid)                         # (and idle: the workers that used to outlive it)
            if any(_is_loky_worker(c) for c in tree) and list(tmp_path.glob('root/runs/*/metrics.json')): break
            time.sleep(0.05)
        assert p.poll() is None, 'the study ended before its DCI pool could be seen'
        assert any(_is_loky_worker(c) for c in tree), 'the study started no joblib worker while it measured'
        tree = _descendants(p.pid)                             # everything below the runner now
        p.send_signal(signal.SIGKILL)                          # the runner alone, not its process group
        p.wait()
        deadline = time.time() + 20                            # a bound on liveness: they go at once, or never
        while time.time() < deadline and any(_alive(c) for c in tree): time.sleep(0.2)
        alive = [c for c in tree if _alive(c)]
        assert not alive, f"{len(alive)} processes outlived the runner: {[c.pid for c in alive]}"
    finally:
        for c in [p] + _descendants(p.pid) + [c for c in tree if _alive(c)]:
            try: c.kill()
            except (psutil.NoSuchProcess, ProcessLookupError): pass
