//! Confusion counts and the rates derived from them, as percentages.

use serde::{Deserialize, Serialize};

/// Confusion counts for one class, type or slice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// True negatives (injection only; PII has no countable negatives).
    pub tn: usize,
}

/// `num / den` in percent, `None` when `den` is zero (undefined, not zero).
pub fn pct(num: usize, den: usize) -> Option<f64> {
    if den == 0 {
        None
    } else {
        // Rounded so that a report written and read back compares equal.
        Some(((num as f64) * 100.0 / (den as f64) * 1e6).round() / 1e6)
    }
}

impl Counts {
    /// Precision in percent: tp / (tp + fp).
    ///
    /// # Example
    /// ```
    /// use warden_eval::Counts;
    /// let c = Counts { tp: 3, fp: 1, fn_: 2, tn: 0 };
    /// assert_eq!(c.precision(), Some(75.0));
    /// assert_eq!(c.recall(), Some(60.0));
    /// ```
    pub fn precision(&self) -> Option<f64> {
        pct(self.tp, self.tp + self.fp)
    }

    /// Recall (true-positive rate) in percent: tp / (tp + fn).
    pub fn recall(&self) -> Option<f64> {
        pct(self.tp, self.tp + self.fn_)
    }

    /// False-positive rate in percent: fp / (fp + tn).
    pub fn fpr(&self) -> Option<f64> {
        pct(self.fp, self.fp + self.tn)
    }

    /// F1 in percent: 2tp / (2tp + fp + fn).
    pub fn f1(&self) -> Option<f64> {
        pct(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

/// The score threshold that keeps the false-positive rate at or below
/// `max_fpr` (a fraction): a text counts as detected when its score is
/// strictly above the returned value. `None` means every score is allowed
/// through (no negatives, or the budget covers all of them).
///
/// # Example
/// ```
/// use warden_eval::metrics::threshold_at_fpr;
/// // 100 negatives; 1% FPR allows one of them above the threshold.
/// let mut neg = vec![0.0f32; 97];
/// neg.extend([0.5, 0.7, 0.9]);
/// assert_eq!(threshold_at_fpr(&neg, 0.01), Some(0.7));
/// ```
pub fn threshold_at_fpr(negative_scores: &[f32], max_fpr: f64) -> Option<f32> {
    let mut sorted: Vec<f32> = negative_scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    // Number of negatives allowed above the threshold. The epsilon keeps
    // 0.05 * 200 from rounding down to 9.
    let allowed = (max_fpr * sorted.len() as f64 + 1e-9).floor() as usize;
    sorted.get(allowed).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_is_none() {
        let c = Counts::default();
        assert_eq!(
            (c.precision(), c.recall(), c.fpr(), c.f1()),
            (None, None, None, None)
        );
    }

    #[test]
    fn threshold_sweep_respects_budget_with_ties() {
        // 10 negatives tied at 0.5: any threshold below 0.5 gives FPR 10/20.
        let mut neg = vec![0.5f32; 10];
        neg.extend(vec![0.1f32; 10]);
        let t = threshold_at_fpr(&neg, 0.05).unwrap();
        assert_eq!(t, 0.5);
        assert_eq!(neg.iter().filter(|&&s| s > t).count(), 0);
        let t = threshold_at_fpr(&neg, 0.5).unwrap();
        assert_eq!(t, 0.1);
        assert_eq!(neg.iter().filter(|&&s| s > t).count(), 10);
        assert_eq!(threshold_at_fpr(&neg, 1.0), None);
        assert_eq!(threshold_at_fpr(&[], 0.01), None);
    }
}
