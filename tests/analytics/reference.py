"""Reference values for the analytics tests, from SciPy, NumPy and statsmodels.

Run at build time (its output is reference.json beside the test binary). Prints one JSON object: the fixed series (generated with NumPy's legacy RandomState, whose
streams are stable across versions) and what the reference libraries compute on them.
"""
import json
import sys
import warnings

import numpy as np
from scipy import special, stats

warnings.simplefilter("ignore")
out = {}
rs = np.random.RandomState(20261201)

# A rising series with noise and a few outliers; ties on purpose.
n = 60
trend = 100.0 + 0.8 * np.arange(n) + rs.normal(0, 3, n)
trend[[7, 31, 50]] += [40.0, -35.0, 55.0]
trend = np.round(trend, 1)
times = 1764547200.0 + 300.0 * np.arange(n) + rs.uniform(-20, 20, n)
out["trend"] = trend.tolist()
out["times"] = times.tolist()

qs = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0]
out["quantiles"] = {"q": qs, "values": [float(np.quantile(trend, q)) for q in qs]}
out["mean"] = float(np.mean(trend))
out["var1"] = float(np.var(trend, ddof=1))
out["var0"] = float(np.var(trend, ddof=0))
out["median"] = float(np.median(trend))
out["mad"] = float(stats.median_abs_deviation(trend, scale=1.0))
out["ranks"] = stats.rankdata(trend, method="average").tolist()

grid = []
for a, b, x in [(0.5, 0.5, 0.3), (2, 3, 0.4), (10, 0.5, 0.999), (0.5, 20, 0.01), (30, 40, 0.5),
                (1.5, 1.5, 0.999999), (200, 0.5, 0.7), (5, 5, 1e-5), (0.1, 0.2, 0.9)]:
    grid.append([a, b, x, float(special.betainc(a, b, x))])
out["betainc"] = grid
tgrid = []
for t, df in [(0.0, 5), (0.5, 3), (2.1, 10), (-3.3, 7.5), (8.0, 40), (25.0, 58), (1e-3, 1000), (4.0, 1)]:
    tgrid.append([t, df, float(2 * stats.t.sf(abs(t), df))])
out["t_two_sided"] = tgrid
out["norm_sf"] = [[z, float(stats.norm.sf(z))] for z in [-3.0, 0.0, 1.0, 2.5, 6.0, 10.0]]


def fit(res):
    return {"slope": float(res.slope), "intercept": float(res.intercept), "r": float(res.rvalue),
            "p": float(res.pvalue), "stderr": float(res.stderr)}


out["linregress_index"] = fit(stats.linregress(np.arange(n, dtype=float), trend))
out["linregress_time"] = fit(stats.linregress(times, trend))
flat = 50.0 + rs.normal(0, 2, 40)
out["flat"] = flat.tolist()
out["linregress_flat"] = fit(stats.linregress(np.arange(40, dtype=float), flat))

# Anomaly scores on the whole series.
out["zscore"] = stats.zscore(trend).tolist()
med = np.median(trend)
out["modified_zscore"] = (0.6745 * (trend - med) / stats.median_abs_deviation(trend, scale=1.0)).tolist()
q1, q3 = np.percentile(trend, [25, 75])
out["quartiles"] = [float(q1), float(q3)]

# Two samples: a baseline and a slower current set, with ties.
base = np.round(rs.normal(10.0, 1.0, 30), 1)
cur = np.round(rs.normal(10.8, 1.2, 25), 1)
out["base"] = base.tolist()
out["cur"] = cur.tolist()
mw = stats.mannwhitneyu(cur, base, alternative="two-sided", method="asymptotic", use_continuity=True)
out["mwu_asymptotic"] = [float(mw.statistic), float(mw.pvalue)]
small_x = [1.1, 2.4, 3.9, 5.2, 7.7]
small_y = [2.0, 4.5, 6.1, 8.3, 9.0, 9.9, 10.4]
out["small_x"] = small_x
out["small_y"] = small_y
mw = stats.mannwhitneyu(small_x, small_y, alternative="two-sided", method="exact")
out["mwu_exact"] = [float(mw.statistic), float(mw.pvalue)]
one_big_x = (rs.normal(0, 1, 6) + 0.9).tolist()
one_big_y = rs.normal(0, 1, 40).tolist()
out["mixed_x"] = one_big_x
out["mixed_y"] = one_big_y
mw = stats.mannwhitneyu(one_big_x, one_big_y, alternative="two-sided")  # method="auto": exact here
out["mwu_auto"] = [float(mw.statistic), float(mw.pvalue)]
w = stats.ttest_ind(cur, base, equal_var=False)
out["welch"] = [float(w.statistic), float(w.pvalue)]

# Correlation: two related series with ties.
cx = np.round(rs.normal(0, 1, 50), 1)
cy = np.round(0.6 * cx + rs.normal(0, 1, 50), 1)
out["cx"] = cx.tolist()
out["cy"] = cy.tolist()
p = stats.pearsonr(cx, cy)
s = stats.spearmanr(cx, cy)
out["pearson"] = [float(p[0]), float(p[1])]
out["spearman"] = [float(s[0]), float(s[1])]

# Rolling modified z-score: each point against the 30 before it (at least 10).
roll = 20.0 + rs.normal(0, 1.5, 200)
roll[[40, 90, 91, 150]] += [12.0, -10.0, 15.0, 9.0]
roll = np.round(roll, 2)
out["rolling"] = roll.tolist()
scores = []
for i in range(len(roll)):
    past = roll[max(0, i - 30):i]
    if len(past) < 10:
        scores.append(None)
        continue
    scores.append(float(0.6745 * (roll[i] - np.median(past)) / stats.median_abs_deviation(past, scale=1.0)))
out["rolling_scores"] = scores

# Forecasts (statsmodels' Holt and ExponentialSmoothing with the same initial state and
# fixed parameters), and the prediction interval by simulating the ETS model.
if "--no-forecast" not in sys.argv:
    from scipy import optimize
    from statsmodels.tsa.holtwinters import ExponentialSmoothing, Holt

    def best_sse(model, names):
        """Least SSE over the smoothing parameters with the initial state held fixed (the
        statsmodels optimiser would move it), by SciPy from a few starting points."""
        def sse(p):
            return model.fit(optimized=False, **dict(zip(names, p))).sse
        starts = [[0.2] * len(names), [0.5] * len(names), [0.05] * len(names)]
        bounds = [(1e-4, 1 - 1e-4)] * len(names)
        return min(optimize.minimize(sse, x0, bounds=bounds, method="L-BFGS-B").fun for x0 in starts)

    y = trend
    a, b = 0.4, 0.15
    h = Holt(y[1:], initialization_method="known", initial_level=y[0], initial_trend=y[1] - y[0])
    r = h.fit(smoothing_level=a, smoothing_trend=b, optimized=False)
    out["holt"] = {"alpha": a, "beta": b, "fitted": r.fittedvalues.tolist(), "forecast": r.forecast(12).tolist(),
                   "level": float(r.level[-1]), "slope": float(r.trend[-1])}
    out["holt"]["optimized_sse"] = float(best_sse(h, ["smoothing_level", "smoothing_trend"]))
    sigma = float(np.sqrt(r.sse / (len(y) - 1)))
    sims = 400000
    lvl = np.full(sims, float(r.level[-1]))
    slope = np.full(sims, float(r.trend[-1]))
    g = np.random.default_rng(7)
    lo, hi = [], []
    for _ in range(12):
        e = g.normal(0.0, sigma, sims)
        yy = lvl + slope + e
        lo.append(float(np.quantile(yy, 0.025)))
        hi.append(float(np.quantile(yy, 0.975)))
        new = lvl + slope + a * e
        slope = slope + a * b * e
        lvl = new
    out["holt"]["sim_lower"] = lo
    out["holt"]["sim_upper"] = hi

    m = 12
    k = np.arange(96)
    seas = 50.0 + 0.3 * k + 8.0 * np.sin(2 * np.pi * k / m) + rs.normal(0, 1.0, len(k))
    out["seasonal"] = seas.tolist()
    l0 = seas[:m].mean()
    b0 = (seas[m:2 * m].mean() - l0) / m
    s0 = seas[:m] - l0
    a, b, gm = 0.3, 0.1, 0.2
    es = ExponentialSmoothing(seas, trend="add", seasonal="add", seasonal_periods=m, initialization_method="known",
                              initial_level=l0, initial_trend=b0, initial_seasonal=s0)
    r = es.fit(smoothing_level=a, smoothing_trend=b, smoothing_seasonal=gm, optimized=False)
    out["hw"] = {"season": m, "alpha": a, "beta": b, "gamma": gm, "fitted": r.fittedvalues.tolist(),
                 "forecast": r.forecast(24).tolist()}
    out["hw"]["optimized_sse"] = float(best_sse(es, ["smoothing_level", "smoothing_trend", "smoothing_seasonal"]))
    # statsmodels forecasts a whole number of seasons ahead with the seasonal term of the
    # season before the last one; Hyndman's formula (and spyglass) use the last one, s_T.
    out["hw"]["state"] = [float(r.level[-1]), float(r.trend[-1])] + np.asarray(r.season)[-m:].tolist()
    # Simulated interval from the final state (season terms in time order).
    sigma = float(np.sqrt(r.sse / len(seas)))
    lvl = np.full(sims, float(r.level[-1]))
    slope = np.full(sims, float(r.trend[-1]))
    season = [np.full(sims, v) for v in np.asarray(r.season)[-m:]]
    lo, hi = [], []
    for step in range(24):
        s_old = season[step % m]
        e = g.normal(0.0, sigma, sims)
        yy = lvl + slope + s_old + e
        lo.append(float(np.quantile(yy, 0.025)))
        hi.append(float(np.quantile(yy, 0.975)))
        new = lvl + slope + a * e
        slope = slope + a * b * e
        season[step % m] = s_old + gm * e
        lvl = new
    out["hw"]["sim_lower"] = lo
    out["hw"]["sim_upper"] = hi

json.dump(out, sys.stdout)
