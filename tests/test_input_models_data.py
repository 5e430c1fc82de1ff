"""Issue #29 (and #34 item 5): what a user can hand the models and the data helpers by mistake gets one clear
VaeCausalError where it enters (the CLI: exit 2 and one line), and nothing is written."""
import pytest
import torch

from conftest import cli  # the `vaecausal` command run in this process
from vaecausal_nb.core import VaeCausalError, same_device
from vaecausal_nb.data import load_dataset, random_batch, should_materialise, to_float
from vaecausal_nb.models import MODELS, GaussianVAE, build_model


def one_line_error(r, msg):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert msg in r.stderr and r.stderr.strip().count('\n') == 0 and 'Traceback' not in r.stderr, r.stderr


@pytest.fixture(scope='module')
def images():
    "A batch of procedural dSprites as a user gets it: uint8, then to_float."
    x, _ = random_batch(load_dataset('dsprites', procedural=True), 8, torch.Generator().manual_seed(0))
    return to_float(x)


@pytest.mark.parametrize('arch', ['vae', 'vq_vae', 'qlae'])
@pytest.mark.parametrize('train', [False, True])
def test_images_in_0_255_as_floats(images, arch, train):
    m = build_model(arch, 4).train(train)
    for f in (m, m.encode, m.representation):
        with pytest.raises(VaeCausalError) as e: f(images * 255)
        assert str(e.value) == (f'{type(m).__name__} takes images with values in [0, 1], got values from 0 to 255 '
                                '(out of [0, 1]): divide images in 0..255 by 255 (uint8 images: data.to_float)')
    with torch.no_grad():
        out = m.eval()(images)                                      # in [0, 1]: accepted, and so are the decoded
        m(torch.sigmoid(out['logits']))                             # probabilities fed back in


def test_float64_images(images):
    m = build_model('vae').eval()
    with pytest.raises(VaeCausalError) as e: m(images.double())
    assert str(e.value) == ('GaussianVAE has torch.float32 weights, so it takes torch.float32 images, got '
                            'torch.float64; convert them with x.float()')
    m(images.double().float())


@pytest.mark.parametrize('bad', [True, False, 2.5, '10', -1])
def test_latent_dim_not_a_positive_integer(bad):
    with pytest.raises(VaeCausalError) as e: build_model('vae', bad)
    assert str(e.value) == f'latent_dim must be a positive integer, got {bad!r}'


@pytest.mark.parametrize('arch, kw, msg', [
    ('vae', {'latent_dim': 10**12}, 'latent_dim must be in [1, 4096] (a larger network would not fit in memory), '
                                    'got 1000000000000'),
    ('factor_vae', {'disc_hidden': 10**12}, 'factor_vae hyperparameter disc_hidden must be in [1, 8192] (a larger '
                                            'network would not fit in memory), got 1000000000000'),
    ('vq_vae', {'num_codes': 10**12}, 'vq_vae hyperparameter num_codes must be in [1, 65536] (a larger network would '
                                      'not fit in memory), got 1000000000000'),
    ('vq_vae', {'latent_dim': 4096, 'code_dim': 1024}, 'vq_vae with latent_dim=4096, num_codes=128, code_dim=1024 '
     'would hold 2,152,696,769 weights (8.0 GiB as float32), more than the 1,073,741,824 build_model allows; make '
     'latent_dim or num_codes or code_dim smaller')])
def test_huge_sizes_refused_before_allocating(arch, kw, msg):
    with pytest.raises(VaeCausalError) as e: build_model(arch, **kw)
    assert str(e.value) == msg


@pytest.mark.parametrize('args, msg', [
    (['--arch', 'factor_vae', '--hparam', 'disc_hidden=1000000000000'], 'disc_hidden must be in [1, 8192]'),
    (['--arch', 'vq_vae', '--hparam', 'num_codes=1000000000000'], 'num_codes must be in [1, 65536]'),
    (['--arch', 'vae', '--latent-dim', '1000000000000'], 'latent_dim must be in [1, 4096]')])
def test_cli_huge_sizes(tmp_path, args, msg):
    r = cli('train', *args, '--procedural', '--steps', '2', '--batch-size', '8', '--out', str(tmp_path / 'r'))
    one_line_error(r, msg)
    assert not list(tmp_path.iterdir())                          # nothing written, not even the run folder


def test_allocation_failure_while_building(monkeypatch):
    "Memory that runs out while the weights are made (the count passed): one error, not a raw traceback."
    class Greedy(GaussianVAE):
        def build(self):
            if next(self.parameters()).device.type != 'meta':
                raise RuntimeError('[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory')
    monkeypatch.setitem(MODELS, 'vae', Greedy)
    with pytest.raises(VaeCausalError) as e: build_model('vae', 3)
    assert str(e.value) == ('building vae with latent_dim=3 and the default sizes (758,855 weights) ran out of '
                            'memory; make it smaller or free memory')
    class Buggy(GaussianVAE):
        def build(self): raise RuntimeError('a bug in build')
    monkeypatch.setitem(MODELS, 'vae', Buggy)
    with pytest.raises(RuntimeError, match='a bug in build'): build_model('vae', 3)   # bugs are not disguised


def test_same_device():
    assert same_device(torch.device('cpu'), torch.zeros(1).device)
    assert same_device(torch.device('cuda'), torch.device('cuda:0'))       # get_device's 'cuda' vs a tensor's cuda:0
    assert torch.device('cuda') != torch.device('cuda:0')                  # which == gets wrong
    assert not same_device('cuda:0', 'cuda:1') and not same_device('cpu', 'cuda')
    assert same_device('cpu', torch.device('cpu', 0))


def test_a_dataset_held_on_cuda0_is_not_held_again(monkeypatch):
    "Both places that ask 'already on the device?' (data.should_materialise, fleet._to_hold) see cuda:0 as cuda."
    import types
    from vaecausal_nb import data, fleet
    monkeypatch.setattr(data, 'free_memory', lambda d: 10**12)        # plenty: only 'already held' can say no
    ds = load_dataset('shapes3d', procedural=True)
    ds.resident = types.SimpleNamespace(device=torch.device('cuda', 0))  # as a tensor on the GPU reports its device
    cuda = torch.device('cuda')                                         # as get_device names it
    assert not should_materialise(ds, cuda, 10 * len(ds))
    assert fleet._to_hold([(ds, 10 * len(ds))], cuda, True) == [] and fleet._to_hold([(ds, 10 * len(ds))], cuda, None) == []
    ds.resident = None                                                  # not held: both would hold it
    assert should_materialise(ds, cuda, 10 * len(ds)) and fleet._to_hold([(ds, 10 * len(ds))], cuda, None) == [ds]


def test_should_materialise_sees_a_held_dataset(images):
    ds = load_dataset('dsprites', procedural=True)
    ds.resident = torch.zeros(1, dtype=torch.uint8)          # stands in for the whole set, held on the CPU
    assert ds.resident.device == torch.device('cpu') and ds.resident.device != torch.device('cpu', 0)
    assert not should_materialise(ds, torch.device('cpu', 0), images=10**9)
