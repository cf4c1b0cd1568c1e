"""Trainer: seeds make runs repeatable; a killed run resumes from its checkpoint exactly.

A checkpoint is resumed only by the run it belongs to; Ctrl-C keeps the last checkpoint.
"""

from __future__ import annotations

import signal

import pytest
import torch

from nct_md.errors import NCTInputError, NCTInterrupted
from nct_md.flows import point_flow
from nct_md.latent import HarmonicLatent
from nct_md.systems.harmonic_chain import ChainHamiltonian, NCTPair
from nct_md.train import Trainer, variational_free_energy


class Killed(Exception):
    pass


def make_run(steps: int, checkpoint=None, seed: int = 0, kill_at: int | None = None,
             signal_at: int | None = None, **options):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = NCTPair(point_flow(4, n_couplings=2, hidden=8, generator=gen),
                    HarmonicLatent(4)).double()
    ham = ChainHamiltonian(4)

    def loss(step):
        if step == kill_at:
            raise Killed
        if step == signal_at:  # Ctrl-C during this step
            signal.raise_signal(signal.SIGINT)
        value, est = variational_free_energy(model.flow, model.latent, ham, 32, generator=gen)
        return value, {"free_energy": est.variational}

    trainer = Trainer(model, loss, steps=steps, lr=0.01, seed=seed, generator=gen,
                      checkpoint=checkpoint, checkpoint_every=5, progress=False, **options)
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


def test_ctrl_c_keeps_the_last_checkpoint_and_resume_matches(tmp_path):
    full, trainer = make_run(20)
    trainer.fit()
    ckpt = tmp_path / "run.ckpt"
    _, first = make_run(20, checkpoint=ckpt, signal_at=7)
    with pytest.raises(NCTInterrupted) as stopped:
        first.fit()
    assert str(stopped.value) == (f"interrupted at step 5; checkpoint kept at {ckpt}; run the "
                                  "same command again to resume")
    assert not ckpt.with_name("run.ckpt.lock").exists()
    resumed, second = make_run(20, checkpoint=ckpt)
    assert len(second.fit()) == 20
    assert torch.allclose(flat(resumed), flat(full), atol=1e-12)


def test_checkpoint_of_other_settings_is_refused_and_restart_starts_fresh(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    make_run(10, checkpoint=ckpt)[1].fit()
    before = ckpt.read_bytes()
    with pytest.raises(NCTInputError, match=r"belongs to another run \(trainer: steps was 10, "
                                            r"now 20\); pass --restart"):
        make_run(20, checkpoint=ckpt)[1].fit()
    assert ckpt.read_bytes() == before
    fresh, trainer = make_run(20, checkpoint=ckpt, restart=True)
    assert [r["step"] for r in trainer.fit()] == list(range(1, 21))
    full, uninterrupted = make_run(20)
    uninterrupted.fit()
    assert torch.equal(flat(fresh), flat(full))
