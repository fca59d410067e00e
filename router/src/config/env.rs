//! `${VAR}` and `${VAR:-default}` interpolation of configuration strings.

/// Why a string could not be interpolated.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `${VAR}` names a variable that is not set and has no default.
    #[error("environment variable `{0}` is not set and has no default (write ${{{0}:-default}})")]
    Unset(String),
    /// A `${` without its closing `}`, or an empty name.
    #[error("malformed reference {0:?}: expected ${{NAME}} or ${{NAME:-default}}")]
    Malformed(String),
}

/// Replaces every `${VAR}` / `${VAR:-default}` in `input` using `lookup`. `$$`
/// stands for a literal `$`. An empty variable counts as unset for `:-`, as in
/// the shell.
pub fn interpolate(
    input: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, EnvError> {
    if !input.contains('$') {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| EnvError::Malformed(rest.to_owned()))?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid_name =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_name {
                return Err(EnvError::Malformed(format!("${{{inner}}}")));
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(EnvError::Unset(name.to_owned())),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        assert_eq!(
            interpolate("http://${HOST}/x", env).unwrap(),
            "http://example.com/x"
        );
        assert_eq!(
            interpolate("${NOPE:-http://a:1/}", env).unwrap(),
            "http://a:1/"
        );
        assert_eq!(interpolate("${EMPTY:-d}", env).unwrap(), "d");
        assert_eq!(interpolate("cost $$5 $x", env).unwrap(), "cost $5 $x");
    }

    #[test]
    fn reports_unset_and_malformed() {
        assert_eq!(
            interpolate("${NOPE}", env),
            Err(EnvError::Unset("NOPE".into()))
        );
        assert!(matches!(
            interpolate("${HOST", env),
            Err(EnvError::Malformed(_))
        ));
        assert!(matches!(
            interpolate("${}", env),
            Err(EnvError::Malformed(_))
        ));
    }
}
