//! The one way a difference between two outputs is taken: fails on NaN, on empty inputs and on
//! unequal lengths, so that a broken path can never score 0 and pass.

use crate::ModelError;

/// Largest `|a[i] − b[i]|`. An error when the lengths differ, when there is nothing to compare,
/// or when either side holds a NaN (which `f32::max` would silently drop).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> crate::Result<f32> {
    if a.len() != b.len() || a.is_empty() {
        return Err(ModelError::Shape {
            what: "compared outputs",
            expected: "two non-empty outputs of equal length".into(),
            got: format!("lengths {} and {}", a.len(), b.len()),
        });
    }
    let mut worst = 0f32;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (x - y).abs();
        if d.is_nan() {
            return Err(ModelError::InvalidConfig(format!(
                "NaN in compared outputs at index {i} ({x} vs {y})"
            )));
        }
        if d > worst {
            worst = d;
        }
    }
    Ok(worst)
}

/// Largest `|x|`, with the same refusals as [`max_abs_diff`].
pub fn max_abs(a: &[f32]) -> crate::Result<f32> {
    max_abs_diff(a, &vec![0.0; a.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_output_is_an_error_not_a_zero_difference() {
        assert!(max_abs_diff(&[1.0, f32::NAN], &[1.0, 2.0]).is_err());
        assert!(max_abs_diff(&[1.0, 2.0], &[f32::NAN, 2.0]).is_err());
    }

    #[test]
    fn empty_or_unequal_outputs_are_errors() {
        assert!(max_abs_diff(&[], &[]).is_err());
        assert!(max_abs_diff(&[1.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn the_largest_difference_is_returned() {
        assert_eq!(max_abs_diff(&[1.0, -2.0, 3.0], &[1.5, 2.0, 3.0]), Ok(4.0));
        assert_eq!(max_abs(&[-3.0, 2.0]), Ok(3.0));
    }
}
