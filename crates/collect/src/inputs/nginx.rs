//! nginx `stub_status`.

use crate::line_protocol::Point;

/// Parses the stub_status page:
/// ```text
/// Active connections: 2
/// server accepts handled requests
///  10 10 31
/// Reading: 0 Writing: 1 Waiting: 1
/// ```
pub fn parse(text: &str) -> Option<Point> {
    let mut lines = text.lines();
    let active: u64 = lines
        .next()?
        .strip_prefix("Active connections:")?
        .trim()
        .parse()
        .ok()?;
    lines.next()?;
    let [accepts, handled, requests] = numbers(lines.next()?)?;
    let [reading, writing, waiting] = numbers(lines.next()?)?;
    Some(
        Point::new("nginx")
            .field("active", active)
            .field("accepts", accepts)
            .field("handled", handled)
            .field("requests", requests)
            .field("reading", reading)
            .field("writing", writing)
            .field("waiting", waiting),
    )
}

/// The numbers of a line, skipping its labels (`Reading:`...); `None`
/// unless there are exactly `N`.
fn numbers<const N: usize>(line: &str) -> Option<[u64; N]> {
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    numbers.try_into().ok()
}

crate::inputs::http::status_page_input!(
    /// `[inputs.nginx]`.
    NginxInput,
    "http://127.0.0.1:8080/nginx_status"
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::line_protocol::FieldValue;

    #[test]
    fn parses_stub_status() {
        let p = parse("Active connections: 2 \nserver accepts handled requests\n 10 10 31 \nReading: 0 Writing: 1 Waiting: 1 \n").unwrap();
        assert!(
            p.fields
                .contains(&("requests".into(), FieldValue::Integer(31)))
        );
        assert!(
            p.fields
                .contains(&("waiting".into(), FieldValue::Integer(1)))
        );
    }
}
