#pragma once
/// spyglass::analytics: statistics on any series of doubles (run history, CSV, samples).
///
/// Descriptive statistics, trends, anomalies, change points, regression tests against a
/// baseline, forecasts and correlation. Depends on the standard library only. Every
/// function is pure and reentrant; bad input (empty series, NaN, mismatched lengths, a
/// parameter out of range) throws AnalyticsError and changes nothing.
///
/// Definitions follow SciPy/NumPy where they have one (named per function), so results
/// can be checked against them.

#include <cstddef>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::analytics {

/// Thrown for input the statistics cannot use; what() says which argument and why.
class SPYGLASS_API AnalyticsError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// ---------------------------------------------------------------------------------------
// Descriptive statistics

/// Arithmetic mean.
SPYGLASS_API double mean(std::span<const double> xs);
/// Variance with `ddof` degrees of freedom removed (numpy.var(xs, ddof=ddof)).
SPYGLASS_API double variance(std::span<const double> xs, int ddof = 1);
/// Quantile `q` in [0, 1] by linear interpolation between closest ranks: NumPy's default
/// (method="linear", Hyndman & Fan type 7).
SPYGLASS_API double quantile(std::span<const double> xs, double q);
/// The median (numpy.median).
SPYGLASS_API double median(std::span<const double> xs);
/// Median absolute deviation from the median, unscaled
/// (scipy.stats.median_abs_deviation(xs, scale=1.0)).
SPYGLASS_API double mad(std::span<const double> xs);
/// Ranks 1..n with ties given their average rank (scipy.stats.rankdata, method="average").
SPYGLASS_API std::vector<double> ranks(std::span<const double> xs);

/// A one-pass summary of a series.
struct Summary {
  std::size_t count = 0;  ///< number of points
  double mean = 0;        ///< arithmetic mean
  double stddev = 0;      ///< sample standard deviation (ddof 1; 0 for one point)
  double min = 0;         ///< smallest value
  double q1 = 0;          ///< 25th percentile (linear)
  double median = 0;      ///< 50th percentile
  double q3 = 0;          ///< 75th percentile (linear)
  double max = 0;         ///< largest value
  double mad = 0;         ///< unscaled median absolute deviation
};
/// Summarises `xs` (at least one point).
SPYGLASS_API Summary summarize(std::span<const double> xs);

// ---------------------------------------------------------------------------------------
// Distributions (the special functions behind every p-value)

/// Regularised incomplete beta function I_x(a, b) (scipy.special.betainc), a, b > 0.
SPYGLASS_API double incomplete_beta(double a, double b, double x);
/// Two-sided p-value of Student's t statistic `t` with `df` degrees of freedom:
/// P(|T| >= |t|) (2 * scipy.stats.t.sf(|t|, df)).
SPYGLASS_API double student_t_two_sided(double t, double df);
/// Upper tail of the standard normal distribution, P(Z >= z) (scipy.stats.norm.sf).
SPYGLASS_API double normal_sf(double z);

// ---------------------------------------------------------------------------------------
// Trend

/// An ordinary least-squares line y = intercept + slope * x (scipy.stats.linregress).
struct LinearFit {
  std::size_t n = 0;        ///< points used
  double slope = 0;         ///< change of y per unit of x
  double intercept = 0;     ///< y at x = 0
  double r = 0;             ///< Pearson correlation of x and y
  double r2 = 0;            ///< coefficient of determination (r squared)
  double p_value = 1;       ///< two-sided p of slope = 0 (Student t, n - 2 degrees of freedom)
  double slope_stderr = 0;  ///< standard error of the slope
};
/// Fits a line to (xs[i], ys[i]); at least 3 points and two distinct xs.
SPYGLASS_API LinearFit linear_fit(std::span<const double> xs, std::span<const double> ys);

/// The trend of a series, per index (run) and, when times are given, per unit of time.
struct Trend {
  LinearFit per_index;                ///< x = 0, 1, 2, ...
  std::optional<LinearFit> per_time;  ///< x = the timestamps (their unit: per second if seconds)
  double relative_slope = 0;          ///< per_index.slope / |mean|: the fraction the series moves per point
  bool significant = false;           ///< p_value < alpha
  std::string verdict;                ///< e.g. "rising +1.8% per run over 40 runs (R² 0.91, p 3e-12)"
};
/// The trend of `ys`; `times` (empty, or one per value) adds the per-time fit. A slope
/// counts as significant when its p-value is below `alpha`. `unit` names a point in the
/// verdict ("run", "point").
SPYGLASS_API Trend trend(std::span<const double> ys, std::span<const double> times = {}, double alpha = 0.05,
                         const std::string& unit = "point");

// ---------------------------------------------------------------------------------------
// Anomalies

/// How a point is scored against a reference sample.
enum class AnomalyMethod {
  iqr,              ///< distance beyond the quartiles in IQRs; flagged beyond 1.5
  zscore,           ///< (x - mean) / population stddev (scipy.stats.zscore); |z| > 3
  modified_zscore,  ///< 0.6745 (x - median) / MAD (Iglewicz & Hoaglin); |score| > 3.5
};
/// The method's name as the CLI spells it: "iqr", "zscore", "mad".
SPYGLASS_API const char* to_string(AnomalyMethod m);
/// The threshold a method flags beyond when none is given: 1.5, 3, 3.5.
SPYGLASS_API double default_threshold(AnomalyMethod m);

/// A flagged point.
struct Anomaly {
  std::size_t index = 0;  ///< position in the series
  double value = 0;       ///< the point's value
  double score = 0;       ///< the method's score (signed: negative below the centre)
  AnomalyMethod method = AnomalyMethod::modified_zscore;  ///< how it was scored
};

/// Scores `x` against `reference` (which may or may not contain x). IQR: (x - Q3) / IQR
/// above Q3, (x - Q1) / IQR below Q1 (so negative), 0 between. For the modified z-score
/// a zero MAD falls back to the mean absolute deviation (0.7979 (x - median) / meanAD),
/// as Iglewicz & Hoaglin suggest. A zero spread all the same (all reference points
/// equal) divides the distance by 1% of the centre's magnitude instead (by 1 when the
/// centre is 0): finite, and a point 5% off a flat level scores 5.
SPYGLASS_API double anomaly_score(std::span<const double> reference, double x, AnomalyMethod m);
/// Every point of `xs` whose score against the whole series exceeds `threshold` in
/// absolute value (NaN: the method's default), in index order.
SPYGLASS_API std::vector<Anomaly> anomalies(std::span<const double> xs, AnomalyMethod m,
                                            double threshold = std::numeric_limits<double>::quiet_NaN());

// ---------------------------------------------------------------------------------------
// Change points

/// Options of change_points().
struct ChangePointOptions {
  std::size_t min_segment = 5;     ///< shortest segment a cut may leave
  double penalty = 0;              ///< cost of one more change; 0: 3 ln(n) (BIC for mean + variance)
  std::size_t permutations = 199;  ///< of the significance test; 0 skips it (p_value stays 0)
  double alpha = 0.05;             ///< change points with p_value >= alpha are dropped
  unsigned seed = 1;               ///< of the permutations, so results are reproducible
};

/// A point where the series' level or spread shifted: the segment before ends at index-1.
struct ChangePoint {
  std::size_t index = 0;       ///< first point of the new segment
  double mean_before = 0;      ///< mean of the segment before
  double mean_after = 0;       ///< mean of the segment after
  double stddev_before = 0;    ///< population stddev of the segment before
  double stddev_after = 0;     ///< population stddev of the segment after
  double relative_change = 0;  ///< (mean_after - mean_before) / |mean_before| (0 if that is 0)
  double p_value = 0;          ///< permutation test of the two adjacent segments
};

/// Change points of `xs` by binary segmentation on the Gaussian mean-and-variance cost
/// (a cut where it lowers the cost by more than the penalty, each cut then moved to the
/// best place between its neighbours), each tested by permuting its two adjacent
/// segments: the p-value is the share of permutations whose best single split costs as
/// little as the observed one.
SPYGLASS_API std::vector<ChangePoint> change_points(std::span<const double> xs,
                                                    const ChangePointOptions& o = {});

/// Options of merge_blips().
struct BlipOptions {
  std::size_t max_length = 10;  ///< longest segment that can be a blip
  double threshold = 3.5;       ///< modified z-score beyond which a point is an outlier
};

/// Change points without the short blips between them, and the blips' outliers.
struct BlipMerge {
  std::vector<ChangePoint> changes;   ///< the remaining change points, described anew
  std::vector<std::size_t> outliers;  ///< points of merged blips that are outliers, ascending
};

/// A few outliers in a row make the mean-and-variance cost cut a short segment out around
/// them, two "changes" for one blip. A segment of at most `max_length` points next to a
/// change point is merged into that neighbour when its median is an ordinary point of
/// the neighbour (modified z-score within the threshold, against the neighbour's points):
/// the cut between them goes, and the blip's points beyond the threshold are returned as
/// outliers. A short segment at a level of its own stays. Then a cut with outliers within
/// `max_length` points of it goes too when the segments on either side agree robustly
/// (medians within half the larger robust stddev, robust stddevs within a factor 1.5):
/// the outliers alone made it. The remaining change points
/// keep their p-values; their means and spreads are those of their new neighbours.
SPYGLASS_API BlipMerge merge_blips(std::span<const double> xs, const std::vector<ChangePoint>& changes,
                                   const BlipOptions& o = {});

/// Whether `c` changed the spread rather than the level: the stddev changed by a factor
/// of 1.5 or more while the means differ by less than half the larger stddev.
SPYGLASS_API bool is_variance_change(const ChangePoint& c);

// ---------------------------------------------------------------------------------------
// Two-sample tests: regression against a baseline

/// Mann-Whitney U (scipy.stats.mannwhitneyu, two-sided).
struct MannWhitney {
  double u = 0;        ///< U of the first sample (x)
  double p_value = 1;  ///< two-sided
  bool exact = false;  ///< exact null distribution, or the normal approximation
};
/// Tests x against y. Exact when either sample has at most 8 points and there are no
/// ties (SciPy's method="auto" rule; also n1·n2 <= 8000, which bounds the exact table),
/// else the normal approximation with the tie and continuity corrections
/// (method="asymptotic").
SPYGLASS_API MannWhitney mann_whitney(std::span<const double> x, std::span<const double> y);
/// The same with the normal approximation forced (method="asymptotic").
SPYGLASS_API MannWhitney mann_whitney_asymptotic(std::span<const double> x, std::span<const double> y);

/// Welch's unequal-variances t-test (scipy.stats.ttest_ind(x, y, equal_var=False)).
struct WelchT {
  double t = 0;        ///< (mean x - mean y) / standard error
  double df = 0;       ///< Welch-Satterthwaite degrees of freedom
  double p_value = 1;  ///< two-sided
};
/// Each sample needs 2 points.
SPYGLASS_API WelchT welch_t(std::span<const double> x, std::span<const double> y);

/// Options of compare().
struct RegressionOptions {
  double alpha = 0.01;       ///< significance level of the Mann-Whitney test
  double min_effect = 0.05;  ///< smallest |relative median change| that counts (5%)
};
/// Current runs against a baseline.
struct Regression {
  MannWhitney mann_whitney;     ///< current vs baseline
  std::optional<WelchT> welch;  ///< when both samples have 2 points or more
  double baseline_median = 0;   ///< median of the baseline
  double current_median = 0;    ///< median of the current sample
  double relative_change = 0;   ///< (current - baseline) / |baseline| of the medians
  bool regressed = false;       ///< significant and relative_change >= min_effect (higher = worse)
  bool improved = false;        ///< significant and relative_change <= -min_effect
};
/// Whether `current` differs from `baseline`: both the test and the minimum effect must
/// agree, so noise alone never flags and a tiny but consistent change does not either.
SPYGLASS_API Regression compare(std::span<const double> baseline, std::span<const double> current,
                                const RegressionOptions& o = {});

// ---------------------------------------------------------------------------------------
// Forecast

/// Smoothing parameters; NaN means "fit by least squares on one-step errors".
struct HoltParams {
  double alpha = std::numeric_limits<double>::quiet_NaN();  ///< level, in (0, 1)
  double beta = std::numeric_limits<double>::quiet_NaN();   ///< trend, in (0, 1)
  double gamma = std::numeric_limits<double>::quiet_NaN();  ///< season (Holt-Winters only), in (0, 1)
};

/// A forecast with its prediction interval.
struct Forecast {
  double alpha = 0, beta = 0, gamma = 0;  ///< the parameters used (gamma 0 for Holt)
  std::size_t season = 0;                 ///< season length (0: Holt's linear)
  double level = 0;                       ///< final level
  double slope = 0;                       ///< final trend per step
  double sigma = 0;                       ///< RMS of the one-step errors
  std::vector<double> fitted;             ///< one-step-ahead prediction of each point
  std::vector<double> mean;               ///< point forecasts for steps 1..h
  std::vector<double> lower, upper;       ///< prediction interval per step
  double interval = 0.95;                 ///< its coverage
};

/// Holt's linear (additive trend) exponential smoothing of `ys`, `horizon` steps ahead,
/// with the ETS(A,A,N) prediction interval of coverage `level` (Hyndman et al., class 1:
/// var_h = sigma² (1 + Σ_{j<h} (alpha (1 + j beta))²)). Initial level ys[0], trend
/// ys[1] - ys[0]. Needs 3 points.
SPYGLASS_API Forecast holt(std::span<const double> ys, std::size_t horizon, HoltParams p = {},
                           double level = 0.95);
/// Additive Holt-Winters with season length `season` (>= 2; two full seasons needed).
/// Initial level: mean of the first season; trend: mean difference between the first two
/// seasons per step; seasonal terms: the first season minus its mean.
SPYGLASS_API Forecast holt_winters(std::span<const double> ys, std::size_t season, std::size_t horizon,
                                   HoltParams p = {}, double level = 0.95);
/// Steps until the forecast mean first reaches `limit` (from below when the limit is above
/// the final level, else from above); nullopt when it does not within the forecast.
SPYGLASS_API std::optional<std::size_t> steps_to_limit(const Forecast& f, double limit);
/// Steps until a line from `last` with `slope` per step reaches `limit` (at most
/// `max_steps`): the trend's extrapolation beyond a stored forecast.
SPYGLASS_API std::optional<std::size_t> steps_to_limit(double last, double slope, double limit,
                                                       std::size_t max_steps = 1000000);

// ---------------------------------------------------------------------------------------
// Correlation

/// A correlation coefficient and its two-sided p-value (Student t, n - 2 degrees of freedom).
struct Correlation {
  double r = 0;        ///< coefficient in [-1, 1]
  double p_value = 1;  ///< of r = 0
  std::size_t n = 0;   ///< pairs used
};
/// Pearson's r (scipy.stats.pearsonr). At least 3 pairs; a constant input throws.
SPYGLASS_API Correlation pearson(std::span<const double> x, std::span<const double> y);
/// Spearman's rho: Pearson on average ranks (scipy.stats.spearmanr).
SPYGLASS_API Correlation spearman(std::span<const double> x, std::span<const double> y);

}  // namespace SPYGLASS_NAMESPACE::analytics
