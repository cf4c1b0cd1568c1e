"""Trainer: seeds make runs repeatable; a killed run resumes from its checkpoint exactly."""

from __future__ import annotations

import pytest
import torch

from nct_md.flows import point_flow
from nct_md.latent import HarmonicLatent
from nct_md.systems.harmonic_chain import ChainHamiltonian, NCTPair
from nct_md.train import Trainer, variational_free_energy


class Killed(Exception):
    pass


def make_run(steps: int, checkpoint=None, seed: int = 0, kill_at: int | None = None):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = NCTPair(point_flow(4, n_couplings=2, hidden=8, generator=gen),
                    HarmonicLatent(4)).double()
    ham = ChainHamiltonian(4)

    def loss(step):
        if step == kill_at:
            raise Killed
        value, est = variational_free_energy(model.flow, model.latent, ham, 32, generator=gen)
        return value, {"free_energy": est.variational}

    trainer = Trainer(model, loss, steps=steps, lr=0.01, seed=seed, generator=gen,
                      checkpoint=checkpoint, checkpoint_every=5, progress=False)
    return model, trainer


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seed_same_result_and_different_seed_differs():
    a, ta = make_run(20)
    b, tb = make_run(20)
    c, tc = make_run(20, seed=1)
    ha, hb, _ = ta.fit(), tb.fit(), tc.fit()
    assert torch.equal(flat(a), flat(b))
    assert [r["loss"] for r in ha] == [r["loss"] for r in hb]
    assert not torch.equal(flat(a), flat(c))


def test_resume_from_checkpoint_matches_uninterrupted(tmp_path):
    full, trainer = make_run(20)
    trainer.fit()
    ckpt = tmp_path / "run.ckpt"
    _, first = make_run(20, checkpoint=ckpt, kill_at=12)  # killed after 12 of 20 steps
    with pytest.raises(Killed):
        first.fit()
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 10
    resumed, second = make_run(20, checkpoint=ckpt)
    history = second.fit()
    assert len(history) == 20
    assert torch.allclose(flat(resumed), flat(full), atol=1e-12)
    assert not list(tmp_path.glob(".run.ckpt*"))  # no temporary files left behind
