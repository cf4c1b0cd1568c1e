"""Helpers of the scale-out benchmarks (``bench.bench_ddp``, ``bench.bench_cvs``)."""

import shutil

import pytest

from bench.bench_cvs import BYTES_PER_FRAME, check_space, space_needed
from bench.bench_ddp import spread, window_throughput


def test_window_throughput_times_only_the_steps_after_warmup():
    # steps end at 10 s, 11 s (warm-up), then 1 s apart: 3 timed steps of 200 samples in 3 s
    assert window_throughput([10.0, 11.0, 12.0, 13.0, 14.0], 2, 200) == pytest.approx(200.0)
    with pytest.raises(ValueError, match="warm-up"):
        window_throughput([1.0, 2.0], 2, 200)
    with pytest.raises(ValueError, match="warm-up"):
        window_throughput([1.0, 2.0], 0, 200)


def test_spread_reports_median_and_range():
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0,
                                       "rounds": [3.0, 1.0, 2.0]}


def test_space_check_refuses_a_file_system_that_is_too_small(tmp_path):
    assert space_needed(10) - space_needed(0) == 10 * (BYTES_PER_FRAME + 16)
    check_space(tmp_path, 0)
    too_many = shutil.disk_usage(tmp_path).free // BYTES_PER_FRAME
    with pytest.raises(OSError, match="--tmp"):
        check_space(tmp_path, too_many)
