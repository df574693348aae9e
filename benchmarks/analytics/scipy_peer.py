#!/usr/bin/env python3
"""The statistics spyglass::analytics computes, timed in SciPy/NumPy on the same data.

argv[1..3]: files of one value per line: the series, baseline sample, current sample.
Prints one "name microseconds" line per statistic: the median of 21 calls.
"""
import sys
import time

import numpy as np
from scipy import stats


def timed(fn):
    times = []
    for _ in range(21):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e6)
    times.sort()
    return times[len(times) // 2]


series, base, cur = (np.loadtxt(p) for p in sys.argv[1:4])
index = np.arange(len(series), dtype=float)


def summary():
    np.mean(series), np.std(series, ddof=1), np.median(series), np.percentile(series, [25, 75])
    stats.median_abs_deviation(series)


print("summary_us", timed(summary))
print("trend_us", timed(lambda: stats.linregress(index, series)))
print("mann_whitney_us", timed(lambda: stats.mannwhitneyu(base, cur, alternative="two-sided", method="asymptotic")))
print("welch_us", timed(lambda: stats.ttest_ind(base, cur, equal_var=False)))
print("spearman_us", timed(lambda: stats.spearmanr(index, series)))
print("pearson_us", timed(lambda: stats.pearsonr(index, series)))
