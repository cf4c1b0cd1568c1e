"""CVWriter: chunked NPY/NPZ files equal the joined arrays; a failure leaves no file."""

import numpy as np
import pytest

from nct_md.cv.ood import OODScores
from nct_md.cv.writers import CVWriter


def _chunks(rng):
    sizes, trajs = [5, 3, 7], [0, 0, 1]
    return [(k, np.arange(n) * 2.0, rng.normal(size=(n, 2)),
             OODScores(rng.normal(size=n), rng.normal(size=n) > 0, 0.0))
            for k, n in zip(trajs, sizes, strict=True)]


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_chunks_are_written_as_one_array(tmp_path, suffix):
    chunks = _chunks(np.random.default_rng(0))
    out = tmp_path / f"cvs{suffix}"
    ood = suffix == ".npz"
    with CVWriter(out, 2, 2, ood=ood) as writer:
        for k, t, c, s in chunks:
            writer.write(k, t, c, s if ood else None)
    cvs = np.concatenate([c for _, _, c, _ in chunks])
    if suffix == ".npy":
        np.testing.assert_array_equal(np.load(out), cvs)
        return
    data = np.load(out)
    np.testing.assert_array_equal(data["cvs"], cvs)
    np.testing.assert_array_equal(data["time_ps"], np.concatenate([t for _, t, _, _ in chunks]))
    np.testing.assert_array_equal(data["traj"], [0] * 8 + [1] * 7)
    np.testing.assert_array_equal(data["ood"], np.concatenate([s.flag for *_, s in chunks]))
    assert data["traj"].dtype == np.int64 and data["ood"].dtype == np.int8


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".dat"])
def test_a_failure_midway_leaves_no_file(tmp_path, suffix):
    chunks = _chunks(np.random.default_rng(1))
    with pytest.raises(RuntimeError), CVWriter(tmp_path / f"cvs{suffix}", 2, 2) as writer:
        writer.write(*chunks[0][:3])
        raise RuntimeError("the trajectory file ends early")
    assert list(tmp_path.iterdir()) == []
