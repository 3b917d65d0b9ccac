//! Number formatting shared by tables, pivots and notes: about four significant digits, and a
//! dash where a value was not measured.

/// A number with about four significant digits, without exponent noise for everyday sizes.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e7).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// A cell of an optional value: the value formatted, or `–` where there is none.
pub fn cell(v: Option<f64>) -> String {
    v.map(fmt_value).unwrap_or_else(|| "–".into())
}

/// `a / b` as `1.23×`, or `–` where either is missing or `b` is not positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

/// One failed check in the form the gate and the cross-check both print last:
/// `FAIL what: A-label a, B-label b; why (with the tolerance or bound it broke)`.
pub fn failure_line(
    what: &str,
    a: (&str, Option<f64>),
    b: (&str, Option<f64>),
    why: &str,
) -> String {
    let show = |x: Option<f64>| x.map(fmt_value).unwrap_or_else(|| "—".into());
    format!(
        "FAIL {what}: {} {}, {} {}; {why}",
        a.0,
        show(a.1),
        b.0,
        show(b.1)
    )
}

/// Failure lines as one screen: at most `max` of them, then how many more and where they all
/// are; `None` when there are none.
pub fn failure_screen(lines: &[String], max: usize, all_in: &str) -> Option<String> {
    if lines.is_empty() {
        return None;
    }
    let mut s = lines
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > max {
        s.push_str(&format!(
            "\n… and {} more failures ({all_in})",
            lines.len() - max
        ));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_to_readable_digits() {
        assert_eq!(fmt_value(1234.5), "1234");
        assert_eq!(fmt_value(12.345), "12.35");
        assert_eq!(fmt_value(1.5), "1.5000");
        assert_eq!(fmt_value(1.5e-6), "1.500e-6");
    }

    #[test]
    fn a_missing_cell_or_ratio_is_a_dash() {
        assert_eq!(cell(None), "–");
        assert_eq!(cell(Some(2.0)), "2.0000");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50×");
        assert_eq!(ratio(Some(3.0), Some(0.0)), "–");
        assert_eq!(ratio(None, Some(2.0)), "–");
    }
}
