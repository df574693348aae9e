"""Checks `spyglass detect --json` output against NumPy/SciPy on the same CSV.

usage: check_detect.py OUTPUT.json CSV TIME_COLUMN VALUE_COLUMN METHOD OFFLINE(0|1) THRESHOLD WINDOW

Reads the JSON with the json module (rejecting NaN/Infinity, which JSON lacks), reads the
CSV with the csv module, recomputes every score with NumPy/SciPy (each point against the
WINDOW points before it, or against the whole series when OFFLINE) and compares: the
flagged timestamps as exact strings, the values exactly, the scores to 1e-9 relative.
A reference with no spread scores a distance over 1% of its level (1 when the level is 0).
Prints "ok N" (N anomalies) or what differs, and exits non-zero on a difference.
"""
import csv
import json
import math
import sys

import numpy as np
from scipy import stats

out_path, csv_path, tcol, vcol, method, offline, threshold, window = sys.argv[1:9]
offline = offline == "1"
threshold = float(threshold)
window = int(window)


def reject(name):
    raise ValueError("not JSON: " + name)


with open(out_path, encoding="utf-8") as f:
    doc = json.load(f, parse_constant=reject)

stamps, values = [], []
with open(csv_path, newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
        v = row[vcol].strip()
        if v in ("", "NaN", "nan", "NA", "null"):
            continue
        stamps.append(row[tcol].strip())
        values.append(float(v))
x = np.array(values)


def flat(centre, d):
    """The score of a distance d from a reference with no spread: d over 1% of the level."""
    return 0.0 if d == 0 else d / (0.01 * abs(centre) if centre != 0 else 1.0)


def robust(ref, v):
    med = np.median(ref)
    mad = stats.median_abs_deviation(ref, scale=1.0)
    if mad > 0:
        return 0.6745 * (v - med) / mad
    mean_ad = np.mean(np.abs(ref - med))
    return (v - med) / (1.253314 * mean_ad) if mean_ad > 0 else flat(med, v - med)


def zscore(ref, v):
    sd = np.std(ref)
    return (v - np.mean(ref)) / sd if sd > 0 else flat(np.mean(ref), v - np.mean(ref))


def iqr(ref, v):
    q1, q3 = np.percentile(ref, [25, 75])
    d = v - q3 if v > q3 else (v - q1 if v < q1 else 0.0)
    if d == 0:
        return 0.0
    return d / (q3 - q1) if q3 > q1 else flat(q3, d)


def ewma_scores(xs, alpha=0.1, warmup=20):
    out, mean, var = [], 0.0, 0.0
    for i, v in enumerate(xs):
        if i < warmup:
            delta = v - mean
            mean += delta / (i + 1)
            var += (delta * (v - mean) - var) / (i + 1)
            out.append(None)
            continue
        sd = math.sqrt(var)
        diff = v - mean
        s = diff / sd if sd > 0 else flat(mean, diff)
        out.append(s)
        learnt = mean + math.copysign(threshold * sd, diff) if abs(s) > threshold and sd > 0 else v
        ld = learnt - mean
        mean += alpha * ld
        var = (1 - alpha) * (var + ld * alpha * ld)
    return out


score = {"mad": robust, "zscore": zscore, "iqr": iqr}.get(method)
if method == "ewma":
    scores = ewma_scores(x)
elif offline:
    scores = [score(x, v) for v in x]
else:
    scores = [score(x[max(0, i - window):i], x[i]) if i >= 10 else None for i in range(len(x))]

want = [(stamps[i], values[i], s) for i, s in enumerate(scores) if s is not None and abs(s) > threshold]
got = [(a["timestamp"], a["value"], a["score"]) for a in doc["anomalies"]]
problems = []
if [w[0] for w in want] != [g[0] for g in got]:
    problems.append("timestamps differ: want %s, got %s" % ([w[0] for w in want], [g[0] for g in got]))
else:
    for (ws, wv, wsc), (gs, gv, gsc), a in zip(want, got, doc["anomalies"]):
        if wv != gv:
            problems.append("%s: value %r != %r" % (ws, gv, wv))
        if gsc is None or abs(gsc - wsc) > 1e-9 * max(abs(wsc), 1e-12):
            problems.append("%s: score %r != %r" % (ws, gsc, wsc))
        if a["method"] != method:
            problems.append("%s: method %r" % (ws, a["method"]))
p = doc["parameters"]
if p["method"] != method or p["offline"] != offline or p["threshold"] != threshold or p["points"] != len(values):
    problems.append("parameters: %r" % (p,))
if problems:
    print("\n".join(problems))
    sys.exit(1)
print("ok", len(got))
