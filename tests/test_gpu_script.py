"""The device session's script and what it relies on, checked on the CPU before a GPU ever runs it (issue #34):

* `tools/gpu_session.sh all --device cpu`, a dry run of the whole script, in a Python that sees only the device
  image's packages (those installed here, with their dependencies) plus the wheels `gpu_session.sh wheels` builds:
  every step ends well, at most 8 files come back, each named as the device tool allows; a kill after the preflight
  keeps what was written before it;
* check 2's counting (`cuda_checks.HostReads`): what would wait on CUDA in a stacked phase's set-up, steps and
  write-back is nothing, one copy per look; the old set-up and write-back are caught;
* `fleet.member_bytes` bounds the memory a stacked fleet really allocates (PyTorch's CPU allocator, recorded by its
  profiler), and by no more than 3x;
* the compile preflight says what is missing.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from itertools import accumulate
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
import cuda_checks  # noqa: E402

# The device image's Python packages (/work/.library/device/KINDS.md, nvidia-h200, as read on 2026-11-17)
IMAGE = '''absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite
lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas
nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink
nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pyre-extensions pygments pyparsing
pyproject-hooks pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy
seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp'''.split()
OUT_NAME = re.compile(r'^[A-Za-z0-9._-]+$')         # what the device tool brings back from $OUT (at most 8 files)


def _image_dists() -> dict:
    "The image's packages installed here, with the dependencies they need here: {name: distribution}."
    from importlib import metadata
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    seen, todo = {}, [canonicalize_name(n) for n in IMAGE]
    while todo:
        n = todo.pop()
        if n in seen: continue
        try: d = metadata.distribution(n)
        except metadata.PackageNotFoundError: continue
        seen[n] = d
        for r in d.requires or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({'extra': ''}): todo.append(canonicalize_name(req.name))
    return seen


@pytest.fixture(scope='module')
def device_image(tmp_path_factory):
    """A Python that sees only the device image's packages (linked from this venv) and the wheels that
    `gpu_session.sh wheels` builds: (python, wheels folder)."""
    tmp = tmp_path_factory.mktemp('image')
    site = tmp / 'packages'; site.mkdir()
    for d in _image_dists().values():
        for top in {Path(str(f)).parts[0] for f in d.files or [] if not str(f).startswith('..')}:
            src, dst = Path(d.locate_file(top)), site / top
            if src.exists() and not dst.exists(): dst.symlink_to(src)
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(tmp / 'venv')], check=True)
    py = tmp / 'venv' / 'bin' / 'python'
    purelib = subprocess.run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, 'device_image.pth').write_text(f'{site}\n')
    whl = tmp / 'whl'
    r = subprocess.run(['bash', 'tools/gpu_session.sh', 'wheels'], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, 'WHEELS': str(whl), 'PYTHON': sys.executable})
    assert r.returncode == 0, r.stdout + r.stderr
    return py, whl


def session(py, whl, out, work, *args, **kw):
    env = {**os.environ, 'OUT': str(out), 'GPU_SESSION_WORK': str(work), 'PYTHON': str(py), 'WHEELS': str(whl),
           'SITE': str(work / 'site'), 'OMP_NUM_THREADS': '1',
           'GPU_SESSION_SCALE': '10', 'GPU_SESSION_SECONDS': '5400'}    # caps x10: a busy CPU does not decide the outcome
    env.pop('PYTHONPATH', None)
    return subprocess.Popen(['bash', 'tools/gpu_session.sh', *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_image_lacks_what_the_wheels_bring(device_image):
    py, whl = device_image
    test = lambda m: subprocess.run([str(py), '-c', f'import {m}'], capture_output=True, cwd=ROOT).returncode
    assert test('torch') == test('sklearn') == test('pandas') == 0        # the image's
    assert test('fastcore') != 0 and test('ipywidgets') != 0 and test('lightgbm') != 0   # not the image's ...
    assert test('vaecausal_nb.cli') != 0                                   # ... so nothing imports without the wheels
    names = sorted(p.name for p in whl.iterdir())
    assert names[0] == f'fastcore-{__import__("fastcore").__version__}-py3-none-any.whl', names
    lgbm = rf'lightgbm-{__import__("lightgbm").__version__}-py3-none-manylinux[\w.]*\.whl'   # for any Python 3, x86-64
    assert len(names) == 2 and re.fullmatch(lgbm, names[1]), names


def test_dry_run_of_the_whole_session(device_image, tmp_path):
    "`all --device cpu` where only the image's packages and the wheels are: every step ends well, <= 8 files back."
    py, whl = device_image
    out = tmp_path / 'out'; out.mkdir()
    p = session(py, whl, out, tmp_path / 'work', 'all', '--device', 'cpu')
    log = p.communicate()[0]
    assert p.returncode == 0, log
    summary = json.loads((out / 'summary.json').read_text())
    assert [(s['name'], s['status']) for s in summary['steps']] == [
        ('preflight', 'ok'), ('checks', 'ok'), ('bench', 'ok'), ('study', 'ok'), ('results', 'ok')], log
    files = sorted(f.name for f in out.iterdir())
    assert len(files) <= 8 and all(OUT_NAME.match(f) for f in files) and all(f.is_file() for f in out.iterdir()), files
    assert {'preflight.txt', 'checks.txt', 'bench.txt', 'study.txt', 'results.txt', 'results.csv',
            'summary.json'} <= set(files)
    pre = (out / 'preflight.txt').read_text()
    assert 'wheels installed into' in pre and f'imports: {len(cuda_checks.MODULES)} of {len(cuda_checks.MODULES)}' \
        in pre and re.search(r'^compile: (ready|skipped)', pre, re.M), pre
    checks = (out / 'checks.txt').read_text()
    assert 'all passed' in checks and 'steps 0 (allowed 0), looks 2 in 2 looks' in checks, checks
    assert 'stacked phase, not in the rate: set-up' in (out / 'bench.txt').read_text()
    assert len((out / 'results.csv').read_text().strip().splitlines()) == 3                     # a header, two rows


def test_a_kill_keeps_what_ran_before(device_image, tmp_path):
    "Killed (SIGKILL, every process of the call) once the preflight is done: its log and the summary are whole."
    py, whl = device_image
    out = tmp_path / 'out'; out.mkdir()
    p = session(py, whl, out, tmp_path / 'work', 'all', '--device', 'cpu', start_new_session=True)
    end = time.time() + 600                  # a guard against a hang, not a timing
    while time.time() < end and p.poll() is None and not (out / 'summary.json').exists(): time.sleep(0.2)
    ps = subprocess.run(['ps', '-o', 'pid=', '-s', str(p.pid)], capture_output=True, text=True).stdout.split()
    for pid in map(int, ps):
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    p.communicate()
    steps = json.loads((out / 'summary.json').read_text())['steps']
    assert steps[0]['name'] == 'preflight' and steps[0]['status'] == 'ok', steps
    assert (out / 'preflight.txt').read_text().splitlines()[-1].startswith('== preflight: ok (exit 0)')
    assert all(OUT_NAME.match(f.name) for f in out.iterdir())


# ---------------------------------------------------------------------------------------------- check 2's counting
def test_host_reads_counts_what_would_wait():
    t = torch.ones(3)
    for what, fn in [('aten._local_scalar_dense', lambda: float(t[0])),
                     ('aten._local_scalar_dense', lambda: bool(t[0])), ('aten.nonzero', lambda: t.nonzero()),
                     ('Tensor.cpu()', lambda: t.cpu()), ('Tensor.tolist()', lambda: t.tolist()),
                     ('torch.tensor(..., device=)', lambda: torch.tensor([1.0], device='cpu')),
                     ('Tensor.to(cpu)', lambda: t.to('cpu')), ('Tensor.to(cpu)', lambda: t.to(device='cpu'))]:
        with cuda_checks.HostReads() as w: fn()
        assert len(w) == 1 and w[0].startswith(what), (what, w)
    with cuda_checks.HostReads() as w:
        (t * 2 + 1).sum(); torch.tensor([1.0]).to('cpu', non_blocking=True); torch.where(t > 0, t, 0)
        t.to(torch.float64); t.to(t.device)
    assert w == []


def _members(arch='factor_vae', k=2):
    from vaecausal_nb.data import load_dataset
    from vaecausal_nb.fleet import _NoBar, _precision, _stacked_phase, _start
    from vaecausal_nb.train import TrainConfig
    ds = cuda_checks.fake_resident(load_dataset('dsprites', procedural=True))
    members = [_start(TrainConfig(arch=arch, hparams={'gamma': 10.0 * (i + 1), 'disc_hidden': 16, 'disc_layers': 2},
                                  dataset_kwargs={'procedural': True}, steps=50, batch_size=4, seed=i, device='cpu',
                                  progress=False), ds, torch.device('cpu')) for i in range(k)]
    _stacked_phase(members, 2, *_precision(members), _NoBar())      # the members' own Adam states exist from here on
    return members


def test_stacked_phase_waits_only_at_its_looks(monkeypatch):
    from vaecausal_nb import fleet
    monkeypatch.setattr(fleet, 'SYNC_EVERY', 4)
    w = cuda_checks.count_phase_waits(_members(), torch.device('cpu'), steps=6)        # looks at steps 4 and 6
    assert (w['setup'], w['steps'], w['write_back'], w['n_looks']) == ([], [], [], 2), w
    assert [m.split(',')[0] for m in w['looks']] == ['Tensor.tolist(): a copy to the host'] * 2, w['looks']


def test_the_old_set_up_and_write_back_would_wait(monkeypatch):
    "Issue #34's finding 1, as the code was: the step counts read back (float) and made on the device (torch.tensor)."
    from vaecausal_nb import fleet
    def put_state(self, k):
        o = self.opts[k]
        for j, q in enumerate(o.param_groups[0]['params']):
            o.state[q] = {'step': torch.tensor(float(self.step[k]), dtype=torch.float32, device=q.device),
                          'exp_avg': torch.empty_like(q).copy_(self.m[j][k]),
                          'exp_avg_sq': torch.empty_like(q).copy_(self.v[j][k])}
    monkeypatch.setattr(fleet._StackedOpt, 'put_state', put_state)
    members = _members()
    w = cuda_checks.count_phase_waits(members, torch.device('cpu'), steps=1)
    n_tensors = sum(len(list(m.s.model.parameters())) for m in members)      # main and discriminator parameters
    assert len(w['write_back']) == 2 * n_tensors and w['steps'] == [], w['write_back'][:2]


def test_an_unfused_optimisers_step_count_read_back_is_caught(monkeypatch):
    "The FactorVAE discriminator's Adam was not fused: its write-back copied each step count to the host ('cpu')."
    from vaecausal_nb import fleet
    members = _members()
    for m in members: m.s.aux_opt.defaults['fused'] = None        # as the unfused optimiser lays out its state
    w = cuda_checks.count_phase_waits(members, torch.device('cpu'), steps=1)
    n_disc = sum(len(m.s.aux_opt.param_groups[0]['params']) for m in members)
    assert len(w['write_back']) == n_disc and all(x.startswith('Tensor.to(cpu)') for x in w['write_back']), w


# ---------------------------------------------------------------------------------------------- memory
def _stacked_peak(arch, k, batch, dataset='dsprites'):
    "The most bytes PyTorch's CPU allocator held while `k` members were started and trained in two stacked phases."
    from torch.profiler import ProfilerActivity, profile
    from vaecausal_nb.data import load_dataset
    from vaecausal_nb.fleet import _NoBar, _precision, _stacked_phase, _start, member_bytes
    from vaecausal_nb.train import TrainConfig
    ds = load_dataset(dataset, procedural=True)
    cfgs = [TrainConfig(arch=arch, dataset=dataset, dataset_kwargs={'procedural': True}, steps=10, batch_size=batch,
                        seed=i, device='cpu', progress=False) for i in range(k)]
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        members = [_start(c, ds, torch.device('cpu')) for c in cfgs]
        for _ in range(2): _stacked_phase(members, 2, *_precision(members), _NoBar())   # the second: Adam states held
    mem = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == '[memory]')
    return max(accumulate(n for _, n in mem)), k * member_bytes(cfgs[0], ds.image_shape)


@pytest.mark.parametrize('arch, k, batch, dataset', [
    ('beta_vae', 3, 32, 'dsprites'),          # activations and weights alike
    ('factor_vae', 2, 8, 'dsprites'),         # weights: the discriminator's 1000 x 6 units
    ('vq_vae', 2, 16, 'dsprites'),            # buffers updated in place
    ('beta_vae', 2, 16, 'shapes3d')])         # three channels
def test_member_bytes_bounds_what_a_stacked_fleet_allocates(arch, k, batch, dataset):
    peak, estimate = _stacked_peak(arch, k, batch, dataset)
    assert peak <= estimate <= 3 * peak, (peak / 2**20, estimate / 2**20, estimate / peak)


def test_compile_preflight_says_what_is_missing(monkeypatch):
    monkeypatch.delenv('CC', raising=False)
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    monkeypatch.setattr(cuda_checks.os.path, 'exists', lambda p: False)
    ok, why = cuda_checks.compile_ready()
    assert not ok and why.startswith('skipped: torch.compile cannot build here, it lacks a C compiler ($CC, gcc or '
                                     'clang) and Python.h (not in ') and why.endswith('every compiled step is skipped')
    monkeypatch.setattr(shutil, 'which', lambda name: f'/usr/bin/{name}')
    monkeypatch.setattr(cuda_checks.os.path, 'exists', lambda p: True)
    assert cuda_checks.compile_ready() == (True, 'ready: a compiler and Python.h')
