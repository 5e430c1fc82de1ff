"""QLAE trains as the latent-quantization paper's code does (Hsu et al. 2023, kylehkhsu/latent_quantization): its
encoder's outputs stay near the codebooks. The first version weighted the quantisation and commitment losses
410× too weakly against our summed reconstruction; the straight-through gradient then pushed the encoder's
outputs hundreds of units past the codebooks' ends (quantisation loss ~10⁵–10⁶, every latent at a codebook end)."""
import pytest
import torch

from vaecausal_nb.core import torch_threads
from vaecausal_nb.data import load_dataset, random_batch, to_float
from vaecausal_nb.train import TrainConfig, train


@pytest.fixture(scope='module')
def qlae_run():
    "300 steps of the default QLAE on procedural dSprites at batch 16, the authors' learning rate (1e-3)."
    cfg = TrainConfig(arch='qlae', steps=300, batch_size=16, lr=1e-3, seed=0, dataset_kwargs={'procedural': True},
                      progress=False, log_every=10)
    with torch_threads(1): return train(cfg)     # one thread: light on a shared machine


def test_encoder_stays_near_its_codebooks(qlae_run):
    m = qlae_run.model.eval()
    x, _ = random_batch(load_dataset('dsprites', procedural=True), 256, torch.Generator().manual_seed(1))
    with torch.no_grad(): ze = m.encode(to_float(x))[0]
    lo, hi = m.values.detach().min(1).values, m.values.detach().max(1).values
    outside = (ze - hi).clamp(min=0) + (lo - ze).clamp(min=0)      # 0 inside a latent's codebook range
    # within twice a codebook's width of it (the broken version: a median of ~60 outside ranges of width ~2; fixed: ~0.3
    # outside ranges of width ~1.1, at the peak of the transient the first codes bring)
    assert outside.median() < 2 * (hi - lo).min(), (outside.median().item(), lo.tolist(), hi.tolist())
    assert ze.abs().max() < 50, ze.abs().max().item()


def test_quantisation_loss_stays_bounded(qlae_run):
    h = qlae_run.history
    # summed over the 10 latents: the broken version reached ~10⁵ by step 300; fixed it peaks at ~30
    assert h['quantize'].tail(10).max() < 1000, h['quantize'].tail(10).tolist()
    assert h['recon'].tail(10).mean() < 600           # it learns: ~630 is a constant (mean) image
